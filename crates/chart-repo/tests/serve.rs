//! Serving a chart directory over HTTP: the index, the archives and conditional GETs.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::Path;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use upstart_chart_repo::ChartRepo;

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn tiny_chart(root: &Path, version: &str) {
    write(
        root,
        "tiny/Chart.yaml",
        &format!(
            "apiVersion: v2\nname: tiny\nversion: {version}\nappVersion: \"1.0\"\ndescription: A tiny chart\n"
        ),
    );
    write(root, "tiny/values.yaml", "greeting: hello\n");
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 GET, so the test needs no HTTP client crate.
async fn get(addr: std::net::SocketAddr, path: &str, extra: &[(&str, &str)]) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

#[tokio::test]
async fn index_answers_conditional_gets_with_not_modified() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_chart(tmp.path(), "0.1.0");
    let running = ChartRepo::from_dir(tmp.path())
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = running.addr();

    let first = get(addr, "/index.yaml", &[]).await;
    assert_eq!(first.status, 200);
    let etag = first.header("etag").unwrap().to_owned();
    let last_modified = first.header("last-modified").unwrap().to_owned();
    assert!(
        String::from_utf8(first.body)
            .unwrap()
            .contains("tiny-0.1.0.tgz")
    );

    let by_etag = get(addr, "/index.yaml", &[("If-None-Match", &etag)]).await;
    assert_eq!(by_etag.status, 304);
    assert!(by_etag.body.is_empty());
    let by_date = get(
        addr,
        "/index.yaml",
        &[("If-Modified-Since", &last_modified)],
    )
    .await;
    assert_eq!(by_date.status, 304);
    let stale = get(addr, "/index.yaml", &[("If-None-Match", "\"stale\"")]).await;
    assert_eq!(stale.status, 200);
    running.shutdown().await;
}

#[tokio::test]
async fn archive_matches_the_digest_in_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_chart(tmp.path(), "0.1.0");
    let running = ChartRepo::from_dir(tmp.path())
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let index: serde_yaml_ng::Value = serde_yaml_ng::from_str(running.repo().index_yaml()).unwrap();
    let digest = index["entries"]["tiny"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    let archive = get(running.addr(), "/tiny-0.1.0.tgz", &[]).await;
    assert_eq!(archive.status, 200);
    use sha2::Digest as _;
    assert_eq!(format!("{:x}", sha2::Sha256::digest(&archive.body)), digest);
    assert_eq!(
        get(running.addr(), "/missing-1.0.0.tgz", &[]).await.status,
        404
    );
}

#[tokio::test]
async fn reload_serves_a_new_version_with_a_new_etag() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_chart(tmp.path(), "0.1.0");
    let running = ChartRepo::from_dir(tmp.path())
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let before = get(running.addr(), "/index.yaml", &[]).await;
    tiny_chart(tmp.path(), "0.2.0");
    running.reload().unwrap();
    let after = get(running.addr(), "/index.yaml", &[]).await;
    assert_ne!(before.header("etag"), after.header("etag"));
    assert!(
        String::from_utf8(after.body)
            .unwrap()
            .contains("version: 0.2.0")
    );
    assert_eq!(
        get(running.addr(), "/tiny-0.2.0.tgz", &[]).await.status,
        200
    );
}

#[tokio::test]
async fn auto_reload_serves_edited_charts_without_an_explicit_reload() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_chart(tmp.path(), "0.1.0");
    let running = ChartRepo::from_dir(tmp.path())
        .unwrap()
        .auto_reload(true)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let before = get(running.addr(), "/index.yaml", &[]).await;
    let etag = before.header("etag").unwrap().to_owned();
    let unchanged = get(running.addr(), "/index.yaml", &[("If-None-Match", &etag)]).await;
    assert_eq!(unchanged.status, 304);

    tiny_chart(tmp.path(), "0.2.0");
    let after = get(running.addr(), "/index.yaml", &[("If-None-Match", &etag)]).await;
    assert_eq!(after.status, 200);
    assert!(
        String::from_utf8(after.body)
            .unwrap()
            .contains("version: 0.2.0")
    );

    // A broken edit keeps the last good charts served.
    write(tmp.path(), "tiny/Chart.yaml", "name: tiny\n");
    let broken = get(running.addr(), "/index.yaml", &[]).await;
    assert_eq!(broken.status, 200);
    assert!(
        String::from_utf8(broken.body)
            .unwrap()
            .contains("version: 0.2.0")
    );
}

#[tokio::test]
async fn without_auto_reload_edits_wait_for_reload() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_chart(tmp.path(), "0.1.0");
    let running = ChartRepo::from_dir(tmp.path())
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    tiny_chart(tmp.path(), "0.2.0");
    let index = get(running.addr(), "/index.yaml", &[]).await;
    assert!(!String::from_utf8(index.body).unwrap().contains("0.2.0"));
    assert!(running.repo().is_stale().unwrap());
}
