//! A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution, installed by
//! `scripts/bootstrap-tools`) on a free loopback port over plain HTTP, optionally requiring
//! basic authentication; charts pushed with the real `helm push`, images through the
//! distribution API. Killed when dropped.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// The user of a registry started with [`Registry::start_with_basic_auth`].
pub const USER: &str = "robot";
/// Its password.
pub const PASSWORD: &str = "hunter2";
/// `robot:hunter2` in htpasswd form (bcrypt, cost 4 so every request stays fast).
const HTPASSWD: &str = "robot:$2b$04$dOCUmxWrQJs1yWkqVz67X.rqevP2xIH1eXi.3iHs5PsWCz/bG0MhC\n";

/// A registry process; its access log (combined format) is kept for [`Registry::access_log`].
pub struct Registry {
    child: Child,
    port: u16,
    login: Option<(&'static str, &'static str)>,
    dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `/usr/bin/docker-registry` (Debian's), else one on PATH.
///
/// # Panics
/// When there is none, with how to install it.
pub fn docker_registry() -> PathBuf {
    let system = PathBuf::from("/usr/bin/docker-registry");
    if system.is_file() {
        return system;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("docker-registry"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "docker-registry (CNCF distribution) is needed: run scripts/bootstrap-tools as \
                 root (it runs `apt-get install -y docker-registry`), or install Debian's \
                 docker-registry package yourself"
            )
        })
}

impl Registry {
    /// A registry anyone may push to.
    ///
    /// # Panics
    /// When the registry cannot be started or does not answer within 20 s.
    pub fn start() -> Registry {
        Registry::start_with(None)
    }

    /// A registry requiring basic authentication as [`USER`] / [`PASSWORD`]; the pushes of
    /// this type log in.
    ///
    /// # Panics
    /// As [`Registry::start`].
    pub fn start_with_basic_auth() -> Registry {
        Registry::start_with(Some((USER, PASSWORD)))
    }

    fn start_with(login: Option<(&'static str, &'static str)>) -> Registry {
        let binary = docker_registry();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        if login.is_some() {
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, HTPASSWD).expect("writing htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_file = dir.path().join("config.yml");
        std::fs::write(&config_file, config).expect("writing the registry's configuration");
        let create = |name: &str| std::fs::File::create(dir.path().join(name)).expect(name);
        let child = Command::new(&binary)
            .arg("serve")
            .arg(&config_file)
            .stdout(create("access.log"))
            .stderr(create("registry.log"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let mut registry = Registry {
            child,
            port,
            login,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !registry.answers() {
            if let Ok(Some(status)) = registry.child.try_wait() {
                let log = std::fs::read_to_string(registry.dir.path().join("registry.log"));
                panic!("docker-registry exited with {status}: {log:?}");
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer /v2/ within 20s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// Whether `/v2/` answers (401 too: a registry with authentication is up).
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
        reply
            .lines()
            .next()
            .is_some_and(|status| status.contains(" 200 ") || status.contains(" 401 "))
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's access log so far (combined format, one request a line).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Pushes the packaged chart `archive` (named `file_name`, `NAME-VERSION.tgz`) with
    /// `helm push --plain-http` into `oci://HOST/charts`, logged in when the registry asks.
    ///
    /// # Panics
    /// When helm fails.
    pub fn push_chart(&self, file_name: &str, archive: &[u8]) {
        let work = tempfile::tempdir().expect("a temporary directory");
        let file = work.path().join(file_name);
        std::fs::write(&file, archive).expect("writing the chart archive");
        let mut command = Command::new(crate::helm());
        command
            .arg("push")
            .arg(&file)
            .arg(format!("oci://{}/charts", self.host()))
            .arg("--plain-http");
        if let Some((user, password)) = self.login {
            command.args(["--username", user, "--password", password]);
        }
        let output = command
            .env("HELM_CACHE_HOME", work.path().join("cache"))
            .env("HELM_CONFIG_HOME", work.path().join("config"))
            .env("HELM_DATA_HOME", work.path().join("data"))
            .env("HELM_REGISTRY_CONFIG", work.path().join("registry.json"))
            .stdin(Stdio::null())
            .output()
            .expect("running helm push");
        assert!(
            output.status.success(),
            "helm push failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Pushes a one-layer image `repository:tag` through the distribution API (blob uploads,
    /// then the manifest), logged in when the registry asks, and returns the manifest's digest.
    /// `marker` makes the config, and so the manifest, differ from one push to the next.
    ///
    /// # Panics
    /// When the registry refuses a step.
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
        let digest = sha256_digest(manifest.as_bytes());
        let put = self
            .logged_in(http.put(format!("{base}/manifests/{tag}")))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest)
            .send()
            .await
            .expect("pushing the manifest");
        assert_eq!(put.status(), 201, "pushing the manifest");
        digest
    }

    /// One monolithic blob upload (POST, then PUT with the digest); the digest and size.
    async fn upload(&self, http: &reqwest::Client, base: &str, bytes: Vec<u8>) -> (String, usize) {
        let digest = sha256_digest(&bytes);
        let size = bytes.len();
        let started = self
            .logged_in(http.post(format!("{base}/blobs/uploads/")))
            .send()
            .await
            .expect("starting a blob upload");
        assert_eq!(started.status(), 202, "starting a blob upload");
        let location = started.headers()["location"]
            .to_str()
            .expect("an ASCII location")
            .to_owned();
        let location = if location.starts_with('/') {
            format!("http://{}{location}", self.host())
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let done = self
            .logged_in(http.put(format!("{location}{separator}digest={digest}")))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .expect("finishing a blob upload");
        assert_eq!(done.status(), 201, "finishing a blob upload");
        (digest, size)
    }

    fn logged_in(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.login {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }
}

/// `sha256:HEX` of `bytes`, as the distribution API names blobs and manifests.
fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}
