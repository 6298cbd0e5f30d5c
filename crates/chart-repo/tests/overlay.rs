//! The development overlay over HTTP: the merged index, upstream archives fetched, checked and
//! kept, served from the cache once the upstream is down; publishing with the real curl;
//! packs carried to a fresh directory.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::Path;

use upstart_chart_repo::{CACHE_DIR_NAME, ChartRepo, OverlayOptions, RunningRepo, Upstream};

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn chart(root: &Path, name: &str, version: &str, greeting: &str) {
    write(
        root,
        &format!("{name}/Chart.yaml"),
        &format!("apiVersion: v2\nname: {name}\nversion: {version}\ndescription: d\n"),
    );
    write(
        root,
        &format!("{name}/values.yaml"),
        &format!("greeting: {greeting}\n"),
    );
}

async fn serve(dir: &Path) -> RunningRepo {
    ChartRepo::from_dir(dir)
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn overlay(dir: &Path, upstreams: &[(&str, &str)]) -> RunningRepo {
    ChartRepo::from_dir(dir)
        .unwrap()
        .auto_reload(true)
        .serve_overlay(
            "127.0.0.1:0".parse().unwrap(),
            OverlayOptions {
                upstreams: upstreams
                    .iter()
                    .map(|(name, url)| format!("{name}={url}").parse::<Upstream>().unwrap())
                    .collect(),
                ..OverlayOptions::default()
            },
        )
        .await
        .unwrap()
}

async fn get(url: &str) -> (u16, Vec<u8>) {
    let response = reqwest::get(url).await.unwrap();
    (
        response.status().as_u16(),
        response.bytes().await.unwrap().to_vec(),
    )
}

async fn index(repo: &RunningRepo) -> serde_yaml_ng::Value {
    let (status, body) = get(&format!("{}/index.yaml", repo.url())).await;
    assert_eq!(status, 200);
    serde_yaml_ng::from_slice(&body).unwrap()
}

fn versions(index: &serde_yaml_ng::Value, name: &str) -> Vec<String> {
    index["entries"][name]
        .as_sequence()
        .map(|s| {
            s.iter()
                .map(|e| e["version"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn overlay_serves_local_charts_first_and_upstream_ones_through_its_cache_while_the_upstream_is_down()
 {
    let upstream_dir = tempfile::tempdir().unwrap();
    chart(upstream_dir.path(), "shared", "1.0.0", "upstream");
    chart(upstream_dir.path(), "remote", "2.0.0", "remote");
    let upstream = serve(upstream_dir.path()).await;
    let local = tempfile::tempdir().unwrap();
    chart(local.path(), "shared", "1.0.0", "local");
    chart(local.path(), "mine", "0.1.0", "mine");
    let repo = overlay(local.path(), &[("upstart-charts", upstream.url())]).await;

    let merged = index(&repo).await;
    assert_eq!(versions(&merged, "mine"), ["0.1.0"]);
    assert_eq!(versions(&merged, "remote"), ["2.0.0"]);
    assert_eq!(
        merged["entries"]["remote"][0]["urls"][0],
        "remote-2.0.0.tgz"
    );
    let local_shared = ChartRepo::from_dir(local.path()).unwrap();
    let local_digest = &local_shared
        .charts()
        .iter()
        .find(|c| c.name == "shared")
        .unwrap()
        .digest;
    assert_eq!(
        merged["entries"]["shared"][0]["digest"].as_str().unwrap(),
        local_digest,
        "the local chart wins over the upstream's same version"
    );

    let (status, remote) = get(&format!("{}/remote-2.0.0.tgz", repo.url())).await;
    assert_eq!(status, 200);
    assert_eq!(
        sha256(&remote),
        merged["entries"]["remote"][0]["digest"].as_str().unwrap()
    );
    let cached = local
        .path()
        .join(CACHE_DIR_NAME)
        .join("upstart-charts/remote-2.0.0.tgz");
    assert_eq!(std::fs::read(&cached).unwrap(), remote);

    // The upstream goes away: what was fetched is still served, by this overlay and by a new one.
    upstream.shutdown().await;
    let (status, again) = get(&format!("{}/remote-2.0.0.tgz", repo.url())).await;
    assert_eq!(status, 200);
    assert_eq!(again, remote);
    drop(repo);
    let restarted = overlay(local.path(), &[("upstart-charts", "http://127.0.0.1:9")]).await;
    let offline = index(&restarted).await;
    assert_eq!(versions(&offline, "remote"), ["2.0.0"]);
    assert_eq!(versions(&offline, "mine"), ["0.1.0"]);
    assert_eq!(
        versions(&offline, "shared"),
        ["1.0.0"],
        "upstream versions never fetched are not listed offline"
    );
    let (status, offline_remote) = get(&format!("{}/remote-2.0.0.tgz", restarted.url())).await;
    assert_eq!(status, 200);
    assert_eq!(offline_remote, remote);
}

#[tokio::test]
async fn an_upstream_archive_that_does_not_match_its_index_digest_is_refused() {
    let upstream_dir = tempfile::tempdir().unwrap();
    chart(upstream_dir.path(), "remote", "1.0.0", "remote");
    let packaged = ChartRepo::from_dir(upstream_dir.path()).unwrap();
    let archive = packaged.charts()[0].archive.clone();
    let lying_index = packaged
        .index_yaml()
        .replace(&packaged.charts()[0].digest, &"0".repeat(64));
    let app = axum::Router::new()
        .route(
            "/index.yaml",
            axum::routing::get(move || {
                let body = lying_index.clone();
                async move { body }
            }),
        )
        .route(
            "/remote-1.0.0.tgz",
            axum::routing::get(move || {
                let body = archive.clone();
                async move { body }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let local = tempfile::tempdir().unwrap();
    let repo = overlay(local.path(), &[("up", &url)]).await;
    assert_eq!(versions(&index(&repo).await, "remote"), ["1.0.0"]);
    let (status, body) = get(&format!("{}/remote-1.0.0.tgz", repo.url())).await;
    assert_eq!(status, 502);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("the upstream's index says"), "{text}");
    assert!(
        !local
            .path()
            .join(CACHE_DIR_NAME)
            .join("up/remote-1.0.0.tgz")
            .exists()
    );
    server.abort();
}

/// Runs the real curl, returning the HTTP status and body.
async fn curl(args: &[&str]) -> (u16, String) {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl runs (Debian's curl package)");
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.trim_end().to_owned())
}

#[tokio::test]
async fn a_chart_pushed_with_curl_is_served_at_once_and_can_be_replaced_with_force_and_deleted() {
    let work = tempfile::tempdir().unwrap();
    chart(&work.path().join("src"), "pushed", "0.3.0", "v1");
    let archive = upstart_chart_package::package_chart(&work.path().join("src/pushed")).unwrap();
    let file = work.path().join("pushed-0.3.0.tgz");
    std::fs::write(&file, &archive.archive).unwrap();
    let local = work.path().join("charts");
    chart(&local, "dir-chart", "1.0.0", "dir");
    let repo = overlay(&local, &[]).await;
    let at = format!("@{}", file.display());
    let api = format!("{}/api/charts", repo.url());

    assert_eq!(
        curl(&["--data-binary", &at, &api]).await,
        (201, "{\"saved\":true}".to_owned())
    );
    assert_eq!(versions(&index(&repo).await, "pushed"), ["0.3.0"]);
    let (status, served) = get(&format!("{}/pushed-0.3.0.tgz", repo.url())).await;
    assert_eq!((status, served), (200, archive.archive.clone()));

    let (status, body) = curl(&["--data-binary", &at, &api]).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already exists; add ?force"), "{body}");
    let (status, _) = curl(&["--data-binary", &at, &format!("{api}?force")]).await;
    assert_eq!(status, 201);

    // As the helm cm-push plugin sends it: a multipart form with a `chart` field.
    let (status, body) = curl(&["-F", &format!("chart={at}"), &format!("{api}?force")]).await;
    assert_eq!(status, 201, "{body}");
    let (status, listed) = curl(&[&api]).await;
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["pushed"][0]["version"], "0.3.0");
    assert_eq!(listed["dir-chart"][0]["version"], "1.0.0");

    let delete = format!("{api}/pushed/0.3.0");
    assert_eq!(
        curl(&["-X", "DELETE", &delete]).await,
        (200, "{\"deleted\":true}".to_owned())
    );
    assert!(versions(&index(&repo).await, "pushed").is_empty());
    assert_eq!(curl(&["-X", "DELETE", &delete]).await.0, 404);
    let (status, body) = curl(&["-X", "DELETE", &format!("{api}/dir-chart/1.0.0")]).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("remove the directory itself"), "{body}");
}

#[tokio::test]
async fn pushes_of_bad_archives_are_refused_with_the_reason() {
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("charts");
    chart(&local, "dir-chart", "1.0.0", "dir");
    let repo = overlay(&local, &[]).await;
    let api = format!("{}/api/charts", repo.url());

    let garbage = work.path().join("garbage.tgz");
    std::fs::write(&garbage, b"not a chart").unwrap();
    let (status, body) = curl(&["--data-binary", &format!("@{}", garbage.display()), &api]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid chart archive"), "{body}");

    // An entry climbing out of the chart.
    let mut tar = tar::Builder::new(Vec::new());
    for (path, text) in [
        (
            "evil/Chart.yaml",
            "apiVersion: v2\nname: evil\nversion: 1.0.0\n",
        ),
        ("evil/../../outside", "x"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // set_path refuses `..`: write the raw name as a hostile archive would.
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        tar.append(&header, text.as_bytes()).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
    let evil = work.path().join("evil-1.0.0.tgz");
    std::fs::write(&evil, gz.finish().unwrap()).unwrap();
    let (status, body) = curl(&["--data-binary", &format!("@{}", evil.display()), &api]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unsafe chart archive"), "{body}");

    // The same version as a chart directory: the directory is the source, even with force.
    let same = upstart_chart_package::package_chart(&local.join("dir-chart")).unwrap();
    let same_file = work.path().join("dir-chart-1.0.0.tgz");
    std::fs::write(&same_file, &same.archive).unwrap();
    let (status, body) = curl(&[
        "--data-binary",
        &format!("@{}", same_file.display()),
        &format!("{api}?force"),
    ])
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("is the chart directory"), "{body}");
    assert!(!local.join("evil-1.0.0.tgz").exists());
    assert!(!work.path().join("outside").exists());
}

#[tokio::test]
async fn a_pack_unpacked_in_a_fresh_directory_serves_local_and_cached_upstream_charts_offline() {
    let upstream_dir = tempfile::tempdir().unwrap();
    chart(upstream_dir.path(), "remote", "2.0.0", "remote");
    let upstream = serve(upstream_dir.path()).await;
    let here = tempfile::tempdir().unwrap();
    let local = here.path().join("charts");
    chart(&local, "mine", "0.1.0", "mine");
    let repo = overlay(&local, &[("upstart-charts", upstream.url())]).await;
    let (status, remote) = get(&format!("{}/remote-2.0.0.tgz", repo.url())).await;
    assert_eq!(status, 200);
    drop(repo);
    upstream.shutdown().await;

    let pack = here.path().join("charts.tar.gz");
    let packed = upstart_chart_repo::pack(&local, None, &pack).unwrap();
    assert_eq!((packed.local_charts, packed.cached_archives), (1, 1));
    let there = tempfile::tempdir().unwrap();
    let unpacked_dir = there.path().join("charts");
    let unpacked = upstart_chart_repo::unpack(&pack, &unpacked_dir).unwrap();
    assert_eq!(unpacked, packed);
    let error = upstart_chart_repo::unpack(&pack, &unpacked_dir)
        .unwrap_err()
        .to_string();
    assert!(error.contains("is not empty"), "{error}");

    // No upstream given: the cache's upstream is served from the cache alone.
    let offline = overlay(&unpacked_dir, &[]).await;
    let served = index(&offline).await;
    assert_eq!(versions(&served, "mine"), ["0.1.0"]);
    assert_eq!(versions(&served, "remote"), ["2.0.0"]);
    let (status, body) = get(&format!("{}/remote-2.0.0.tgz", offline.url())).await;
    assert_eq!((status, body), (200, remote));
}

#[tokio::test]
async fn an_upstream_version_published_later_is_listed_once_the_index_is_read_again() {
    let upstream_dir = tempfile::tempdir().unwrap();
    chart(upstream_dir.path(), "remote", "1.0.0", "one");
    let upstream = serve(upstream_dir.path()).await;
    let local = tempfile::tempdir().unwrap();
    let repo = ChartRepo::from_dir(local.path())
        .unwrap()
        .serve_overlay(
            "127.0.0.1:0".parse().unwrap(),
            OverlayOptions {
                upstreams: vec![format!("up={}", upstream.url()).parse().unwrap()],
                refresh: std::time::Duration::ZERO,
                ..OverlayOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(versions(&index(&repo).await, "remote"), ["1.0.0"]);
    // Read again unchanged: the upstream answers 304 and its entries stay listed.
    assert_eq!(versions(&index(&repo).await, "remote"), ["1.0.0"]);

    std::fs::rename(
        upstream_dir.path().join("remote"),
        upstream_dir.path().join("remote-old"),
    )
    .unwrap();
    chart(upstream_dir.path(), "remote", "2.0.0", "two");
    upstream.reload().unwrap();
    assert_eq!(versions(&index(&repo).await, "remote"), ["2.0.0", "1.0.0"]);
}
