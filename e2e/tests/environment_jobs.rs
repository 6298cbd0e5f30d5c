//! Scenario (issue 19): an environment with jobs around its releases and a release switched by
//! one of its variables. A `pre` seed job that a release depends on runs first, a `post`
//! smoke test after every release; the `search` release, off while `withSearch` is `false`, is
//! installed once the variable says `true` and torn down when it says `false` again. The
//! services' jobs go through the whole stack: the environment operator reads the switches,
//! the service operator makes the jobs children, the HelmRelease operator runs each as a Job.
//! On the local cluster, `api`'s image is pinned with `imageDigest` to a tag of a local
//! registry (Debian's `docker-registry`, as the HelmRelease operator's OCI tests start it);
//! the tag pushed again rolls the Deployment out to the new digest.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use upstart_api::v1alpha1::{EnvironmentPhase, HelmRelease, UpstartEnvironment};
use upstart_e2e::{Check, Error, TestEnv};

const TIMEOUT: Duration = Duration::from_secs(300);
const NAME: &str = "jobs-and-switches";

/// The environment, with `withSearch` set to `with_search`; `api`'s image pinned to the
/// digest of `image` when there is one.
fn environment(with_search: bool, image: Option<&str>) -> String {
    let api_values = match image {
        Some(image) => format!(
            "interval: 1s\n            values: {{image: {{repository: '<< imageDigest \"{image}\" >>', tag: pinned}}}}"
        ),
        None => "values: {}".to_owned(),
    };
    format!(
        r#"
apiVersion: upstartoperators.upstart.com/v1alpha1
kind: UpstartEnvironment
metadata:
  name: {NAME}
spec:
  ttl: 1h
  variables:
    withSearch: "{with_search}"
    dataset: small
  services:
    - name: shop
      spec:
        helmReleases:
          cache:
            chart: upstart-charts/redis
          api:
            chart: upstart-charts/redis
            dependencies: [{{name: seed}}, {{name: cache}}]
            {api_values}
          search:
            chart: upstart-charts/redis
            enabled: "<< environment.variables.withSearch >>"
        jobs:
          seed:
            when: pre
            template:
              spec:
                containers:
                  - name: seed
                    image: busybox:1.36
                    command: ["sh", "-c", "echo seeding $DATASET"]
                    env: [{{name: DATASET, value: "<< environment.variables.dataset >>"}}]
          smoke:
            when: post
            template:
              spec:
                containers:
                  - name: smoke
                    image: busybox:1.36
                    command: ["sh", "-c", "echo smoke test passed"]
"#
    )
}

async fn release(env: &TestEnv, name: &str) -> Result<Option<HelmRelease>, Error> {
    env.get_in::<HelmRelease>(NAME, name).await
}

async fn wait_environment(env: &TestEnv, releases: i32) -> Result<(), Error> {
    env.wait_for(
        &format!("the environment Ready with {releases} releases"),
        TIMEOUT,
        || async {
            let status = env
                .get_cluster_scoped::<UpstartEnvironment>(NAME)
                .await?
                .and_then(|e| e.status);
            Ok(match status {
                Some(s)
                    if s.phase == Some(EnvironmentPhase::Ready)
                        && s.ready_releases == Some(releases)
                        && s.total_releases == Some(releases) =>
                {
                    Check::Done(())
                }
                other => Check::Waiting(format!(
                    "{:?}",
                    other.map(|s| (s.phase, s.ready_releases, s.total_releases))
                )),
            })
        },
    )
    .await
}

#[tokio::test]
async fn jobs_run_around_the_releases_and_a_release_follows_its_variable() -> Result<(), Error> {
    // A registry on this machine is reachable by the in-process operators only.
    let local = std::env::var_os(upstart_e2e::KUBECONFIG_ENV).is_none_or(|v| v.is_empty());
    let registry = local.then(registry::Registry::start);
    let mut options = TestEnv::local_options();
    let image = registry
        .as_ref()
        .map(|r| format!("{}/team/api:1.4", r.host()));
    if let Some(registry) = &registry {
        options.repositories =
            upstart_e2e::upstart_local_cluster::RepositoryConfig::from_yaml(&format!(
                "repositories: {{team: {{url: \"oci://{}/team\", plainHttp: true}}}}",
                registry.host()
            ))
            .expect("a repository configuration");
    }
    let first = match &registry {
        Some(registry) => Some(registry.push_image("team/api", "1.4", "first").await),
        None => None,
    };
    let env = TestEnv::start_with(options).await?;
    let environment = |with_search| environment(with_search, image.as_deref());

    env.step("apply the CRDs and the environment with withSearch false");
    env.apply_dir("crds").await?;
    env.apply_yaml(&environment(false)).await?;

    env.step("Ready with cache, api and the two jobs; no search");
    wait_environment(&env, 4).await?;
    assert!(release(&env, "shop-search").await?.is_none());
    let timings = |r: Option<HelmRelease>| r.and_then(|r| r.status?.timings).expect("timings");
    let seed = timings(release(&env, "shop-seed").await?);
    let api = timings(release(&env, "shop-api").await?);
    let smoke = timings(release(&env, "shop-smoke").await?);
    assert!(
        seed.ready_at.unwrap().0 <= api.started_at.unwrap().0,
        "seed before api"
    );
    assert!(
        api.ready_at.unwrap().0 <= smoke.started_at.unwrap().0,
        "smoke after api"
    );
    let jobs = env.list_in::<Job>(NAME).await?;
    let names: Vec<String> = jobs
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("seed-")), "{names:?}");

    env.step("withSearch true: search is installed");
    env.apply_yaml(&environment(true)).await?;
    wait_environment(&env, 5).await?;

    env.step("withSearch false again: search is torn down, the rest stays");
    env.apply_yaml(&environment(false)).await?;
    env.wait_for("search to be gone", TIMEOUT, || async {
        Ok(match release(&env, "shop-search").await? {
            None => Check::Done(()),
            Some(_) => Check::Waiting("shop-search still exists".to_owned()),
        })
    })
    .await?;
    wait_environment(&env, 4).await?;
    let again: Vec<String> = env
        .list_in::<Job>(NAME)
        .await?
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    assert_eq!(
        again, names,
        "the jobs did not run again: their inputs did not change"
    );

    if let (Some(registry), Some(image), Some(first)) = (&registry, &image, first) {
        env.step("api runs the image pinned to its digest; a re-pushed tag rolls it out");
        let pinned = |digest: &str| format!("{}/team/api@{digest}:pinned", registry.host());
        let deployed = || async {
            let deployment: Option<Deployment> = env.get_in(NAME, "api").await?;
            Ok::<_, Error>(
                deployment.and_then(|d| d.spec?.template.spec?.containers.first()?.image.clone()),
            )
        };
        assert_eq!(deployed().await?, Some(pinned(&first)));
        let second = registry.push_image("team/api", "1.4", "second").await;
        assert_ne!(first, second);
        env.wait_for("the Deployment on the new digest", TIMEOUT, || async {
            let now = deployed().await?;
            Ok(if now == Some(pinned(&second)) {
                Check::Done(())
            } else {
                Check::Waiting(format!("{now:?}"))
            })
        })
        .await?;
        let api = release(&env, "shop-api")
            .await?
            .and_then(|r| r.status)
            .expect("status");
        assert_eq!(api.image_digests.get(image), Some(&second));
    }

    env.finish().await
}

/// Debian's `docker-registry` (CNCF distribution) without authentication, as the HelmRelease
/// operator's OCI tests start it (theirs with credentials); killed when dropped.
mod registry {
    use std::io::{Read as _, Write as _};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    pub struct Registry {
        child: Child,
        port: u16,
        _dir: tempfile::TempDir,
    }

    impl Drop for Registry {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Registry {
        pub fn start() -> Registry {
            let binary = ["/usr/bin/docker-registry", "/usr/local/bin/docker-registry"]
                .into_iter()
                .find(|p| std::path::Path::new(p).is_file())
                .expect(
                    "docker-registry (CNCF distribution) is needed: run scripts/bootstrap-tools \
                     as root, or `apt-get install -y docker-registry`",
                );
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                     http:\n  addr: 127.0.0.1:{port}\n",
                    dir.path().join("storage").display()
                ),
            )
            .unwrap();
            let child = Command::new(binary)
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut registry = Registry {
                child,
                port,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while !registry.answers() {
                assert!(
                    registry.child.try_wait().unwrap().is_none(),
                    "docker-registry exited"
                );
                assert!(Instant::now() < deadline, "docker-registry did not answer");
                std::thread::sleep(Duration::from_millis(50));
            }
            registry
        }

        fn answers(&self) -> bool {
            let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
                return false;
            };
            let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.host());
            if stream.write_all(request.as_bytes()).is_err() {
                return false;
            }
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            reply.contains(" 200 ")
        }

        pub fn host(&self) -> String {
            format!("127.0.0.1:{}", self.port)
        }

        /// Pushes a one-layer image `repository:tag` and returns its manifest digest; `marker`
        /// makes each push's manifest differ.
        pub async fn push_image(&self, repository: &str, tag: &str, marker: &str) -> String {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let http = reqwest::Client::new();
            let base = format!("http://{}/v2/{repository}", self.host());
            let config = format!(
                r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"marker":"{marker}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
            );
            let (config_digest, config_size) = self.upload(&http, &base, config.into_bytes()).await;
            let (layer_digest, layer_size) = self.upload(&http, &base, b"layer".to_vec()).await;
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{layer_size}}}]}}"#
            );
            let digest = upstart_release_engine::digest::bytes_digest(manifest.as_bytes());
            let put = http
                .put(format!("{base}/manifests/{tag}"))
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .body(manifest)
                .send()
                .await
                .unwrap();
            assert_eq!(put.status(), 201, "pushing the manifest");
            digest
        }

        async fn upload(
            &self,
            http: &reqwest::Client,
            base: &str,
            bytes: Vec<u8>,
        ) -> (String, usize) {
            let digest = upstart_release_engine::digest::bytes_digest(&bytes);
            let size = bytes.len();
            let started = http
                .post(format!("{base}/blobs/uploads/"))
                .send()
                .await
                .unwrap();
            assert_eq!(started.status(), 202, "starting a blob upload");
            let location = started.headers()["location"].to_str().unwrap().to_owned();
            let location = if location.starts_with('/') {
                format!("http://{}{location}", self.host())
            } else {
                location
            };
            let separator = if location.contains('?') { '&' } else { '?' };
            let done = http
                .put(format!("{location}{separator}digest={digest}"))
                .header("content-type", "application/octet-stream")
                .body(bytes)
                .send()
                .await
                .unwrap();
            assert_eq!(done.status(), 201, "finishing a blob upload");
            (digest, size)
        }
    }
}
