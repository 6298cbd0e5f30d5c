//! What the web view's browser test and measurement share: headless chromium driven through
//! chromedriver (WebDriver, via fantoccini) on a free loopback port, and `upstart dev` run as a
//! user runs it, with the URL of its web view read from its stdout.
//!
//! chromium and chromedriver are Debian's packages (`chromium`, `chromium-driver`), installed
//! by scripts/bootstrap-tools.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// `NAME` on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// chromedriver with a headless chromium session; chromedriver is killed when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Browser {
    /// Starts chromedriver and a headless chromium session, or says why it cannot: `Err` with
    /// the reason when chromium or chromedriver is missing.
    pub async fn start() -> Result<Browser, String> {
        let chromium = on_path("chromium")
            .ok_or("chromium is not installed (Debian package chromium; scripts/bootstrap-tools installs it as root)")?;
        let chromedriver = on_path("chromedriver")
            .ok_or("chromedriver is not installed (Debian package chromium-driver; scripts/bootstrap-tools installs it as root)")?;
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", chromedriver.display()))?;
        let mut browser_args = vec![
            "--headless=new",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
            "--hide-scrollbars",
        ];
        // Chromium's sandbox refuses to run as root (CI runs as root).
        if std::env::var("USER").as_deref() == Ok("root") || is_root() {
            browser_args.push("--no-sandbox");
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": browser_args},
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut driver = Some(driver);
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Ok(Browser {
                        client,
                        driver: driver.take().expect("driver"),
                    });
                }
                Err(error) if Instant::now() > deadline => {
                    if let Some(mut d) = driver.take() {
                        let _ = d.kill();
                        let _ = d.wait();
                    }
                    return Err(format!("chromium could not be started: {error}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Polls `check` (a JavaScript expression) until it is truthy; panics after `limit`.
    pub async fn wait_until(&self, what: &str, check: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        let script = format!("return !!({check});");
        loop {
            let value = self.client.execute(&script, vec![]).await;
            if matches!(value, Ok(serde_json::Value::Bool(true))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what} after {limit:?} ({check}: {value:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` and returns what it returns.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// The class attribute of the element with `id`.
    pub async fn class_of(&self, id: &str) -> String {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("#{id}: {e}"))
            .attr("class")
            .await
            .expect("class")
            .unwrap_or_default()
    }

    /// Saves a screenshot as `NAME.png` into $UPSTART_UI_SCREENSHOTS, when set.
    pub async fn screenshot_if_asked(&self, name: &str) {
        let Some(dir) = std::env::var_os("UPSTART_UI_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).expect("screenshot");
    }

    /// Ends the session and chromedriver.
    pub async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A running `upstart dev` (stopped when dropped), with its web view's URL and kubeconfig.
pub struct Dev {
    child: Child,
    /// Kept open: `upstart dev` must not write into a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
    /// The kubeconfig it wrote.
    pub kubeconfig: PathBuf,
    /// Its stderr (logs), shown when a test fails.
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dev {
    /// Runs `upstart dev ARGS` from the workspace root, with the API server and the web view
    /// on free ports, and waits for the web view's URL on stdout.
    pub fn start(args: &[&str]) -> Dev {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        let log = dir.path().join("upstart.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_upstart"))
            .current_dir(upstart_test_support::workspace_root())
            .args([
                "--log-format",
                "text",
                "dev",
                "--port",
                "0",
                "--ui-port",
                "0",
            ])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("upstart dev");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut url = None;
        let mut line = String::new();
        while url.is_none() && stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
            url = line
                .trim_end()
                .strip_prefix("# web view: ")
                .map(str::to_owned);
            line.clear();
        }
        let Some(url) = url else {
            let _ = child.kill();
            panic!(
                "upstart dev printed no web view URL; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Dev {
            child,
            _stdout: stdout,
            url,
            kubeconfig,
            log,
            _dir: dir,
        }
    }

    /// A client of its API server, through the kubeconfig it wrote.
    pub async fn client(&self) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("config");
        kube::Client::try_from(config).expect("client")
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("upstart dev's last log lines:");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
