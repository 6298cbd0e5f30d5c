//! The web view in a real browser: `upstart dev` with the example environment
//! (`examples/environment.yaml` and the catalog of `examples/services/`), its web view loaded in
//! headless chromium through chromedriver. Every release of the environment is drawn; a release
//! that waits for its dependencies turns Ready on the page without a reload (server-sent
//! events); clicking it shows its details and wiring; the environments list and the catalog
//! show the environment; no output value reaches the pages or their JSON.
//!
//! With `UPSTART_UI_SCREENSHOTS=DIR` the browser saves both pages as PNG into DIR (how
//! docs/images/ui-*.png are made: `UPSTART_UI_SCREENSHOTS=docs/images cargo nextest run -p
//! upstart-cli --test ui_browser`).
//!
//! Without chromium or chromedriver the test says so and passes, except under CI (`CI` set),
//! where it fails: scripts/bootstrap-tools installs both there.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

#[path = "support/browser.rs"]
mod browser;

use std::time::Duration;

use fantoccini::Locator;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::ListParams;

use browser::{Browser, Dev};

const ENVIRONMENT: &str = "my-environment-name";
/// The example's release that waits for the others (its service's postgres, redis, bugsnag,
/// the environment's launch-darkly and the other service).
const WAITING: &str = "example-service-example-service";
/// Each simulated workload takes this long, so the dependent release waits visibly.
const WORKLOAD_DELAY: &str = "3s";

async fn browser_or_skip() -> Option<Browser> {
    match Browser::start().await {
        Ok(browser) => Some(browser),
        Err(reason) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: the web view's browser test needs chromium: {reason}");
            None
        }
        Err(reason) => panic!("CI must run the browser test: {reason}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_page_draws_every_release_and_shows_a_waiting_one_turn_ready_live() {
    let Some(browser) = browser_or_skip().await else {
        return;
    };
    let dev = Dev::start(&[
        "--workload-delay",
        WORKLOAD_DELAY,
        "--catalog",
        "examples/services",
        "examples/environment.yaml",
    ]);
    let page = format!("{}environments/{ENVIRONMENT}", dev.url);
    browser.client.goto(&page).await.unwrap();

    // 1. Every release is drawn (six: four of example-service, one of
    //    another-upstart-service, the environment's launch-darkly), each with an aria label.
    browser
        .wait_until(
            "the graph",
            "document.body.dataset.graph === 'drawn' && document.querySelectorAll('a.node').length === 6",
            Duration::from_secs(30),
        )
        .await;
    let labels = browser
        .eval("return [...document.querySelectorAll('a.node')].map(a => a.getAttribute('aria-label'));")
        .await;
    for release in [
        "example-service/postgres",
        "example-service/redis",
        "example-service/bugsnag",
        "example-service/exampleService",
        "another-upstart-service/web",
        "my-environment-name-launch-darkly",
    ] {
        assert!(
            labels
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l.as_str().unwrap().starts_with(&format!("{release}: "))),
            "{release} is not drawn with its label: {labels}"
        );
    }

    // 2. The dependent release is seen waiting, then Ready, in the same page (no reload).
    let id = format!("release-{WAITING}");
    let class = browser.class_of(&id).await;
    assert!(
        class.contains("waiting") || class.contains("progress"),
        "{WAITING} should not be Ready yet: {class}"
    );
    browser
        .eval("window.stillTheSamePage = true; return null;")
        .await;
    browser
        .wait_until(
            &format!("{WAITING} to turn Ready"),
            &format!("document.getElementById('{id}').classList.contains('ready')"),
            Duration::from_secs(45),
        )
        .await;
    assert_eq!(
        browser.eval("return window.stillTheSamePage === true && performance.getEntriesByType('navigation').length === 1;").await,
        serde_json::Value::Bool(true),
        "the page was reloaded"
    );
    // Once the environment is Ready its critical path is listed and drawn.
    browser
        .wait_until(
            "the critical path",
            "!document.getElementById('critical-section').hidden && document.querySelectorAll('a.node.critical').length > 0",
            Duration::from_secs(20),
        )
        .await;

    // 3. Clicking the release opens its details: what it reads from each dependency.
    browser
        .client
        .find(Locator::Id(&id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_until(
            "the release's details",
            "!document.getElementById('detail').hidden",
            Duration::from_secs(5),
        )
        .await;
    let title = browser
        .client
        .find(Locator::Id("detail-title"))
        .await
        .unwrap();
    assert_eq!(
        title.text().await.unwrap(),
        "example-service/exampleService"
    );
    let wiring = browser
        .client
        .find(Locator::Id("detail-wiring"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        wiring.contains("global.env.DATABASE_URL")
            && wiring.contains("postgres.outputs.POSTGRES_PASSWORD"),
        "{wiring}"
    );
    assert_eq!(
        browser.eval("return document.activeElement.id;").await,
        "detail",
        "the details take the focus"
    );
    browser.eval("window.scrollTo(0, 0); return null;").await;
    browser.screenshot_if_asked("ui-environment").await;

    // 4. The environments list shows it, Ready, and its filters hide it.
    browser.client.goto(&dev.url).await.unwrap();
    browser
        .wait_until(
            "the list",
            &format!("document.querySelector('tr[data-name=\"{ENVIRONMENT}\"]') !== null"),
            Duration::from_secs(10),
        )
        .await;
    let row = browser
        .client
        .find(Locator::Css(&format!("tr[data-name=\"{ENVIRONMENT}\"]")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(row.contains("Ready") && row.contains("2/2"), "{row}");
    browser.screenshot_if_asked("ui-environments").await;
    let filter = browser
        .client
        .find(Locator::Id("filter-text"))
        .await
        .unwrap();
    filter.send_keys("no-such-environment").await.unwrap();
    browser
        .wait_until(
            "the text filter",
            "document.querySelectorAll('#environments tbody tr').length === 0 && !document.getElementById('empty').hidden",
            Duration::from_secs(5),
        )
        .await;

    // 5. The catalog names the environment that uses each template.
    browser
        .client
        .goto(&format!("{}catalog", dev.url))
        .await
        .unwrap();
    browser
        .wait_until(
            "the catalog",
            "document.querySelector('tr[data-name=\"example-service\"]') !== null",
            Duration::from_secs(10),
        )
        .await;
    let template = browser
        .client
        .find(Locator::Css("tr[data-name=\"example-service\"]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(template.contains(ENVIRONMENT), "{template}");

    // 6. No output value reaches the pages or the JSON they read: only key names do.
    let client = dev.client().await;
    let secrets = Api::<Secret>::namespaced(client, ENVIRONMENT)
        .list(&ListParams::default())
        .await
        .unwrap();
    let values: Vec<(String, String)> = secrets
        .items
        .iter()
        .flat_map(|s| s.data.iter().flatten())
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        // The secret ones (a user name like `postgres` or a host named after its release
        // appear on the page as names of other things).
        .filter(|(k, _)| {
            ["PASSWORD", "KEY", "TOKEN", "SECRET"]
                .iter()
                .any(|s| k.to_uppercase().contains(s))
        })
        .collect();
    assert!(
        !values.is_empty(),
        "the example publishes secret outputs (a password, API and SDK keys)"
    );
    let mut seen = String::new();
    for path in [
        format!("api/environments/{ENVIRONMENT}"),
        "api/environments".to_owned(),
        "api/catalog".to_owned(),
    ] {
        browser
            .client
            .goto(&format!("{}{path}", dev.url))
            .await
            .unwrap();
        seen.push_str(&browser.client.source().await.unwrap());
    }
    browser.client.goto(&page).await.unwrap();
    browser
        .wait_until(
            "the graph",
            "document.body.dataset.graph === 'drawn'",
            Duration::from_secs(10),
        )
        .await;
    browser
        .client
        .find(Locator::Id(&id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    seen.push_str(&browser.client.source().await.unwrap());
    assert!(
        seen.contains("POSTGRES_PASSWORD"),
        "the key names are shown"
    );
    for (key, value) in &values {
        assert!(
            !seen.contains(value.as_str()),
            "the value of {key} reached the web view"
        );
    }

    // 7. A request for another host name (DNS rebinding) is refused.
    let address = dev
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "GET /api/environments HTTP/1.1\r\nHost: rebound.example:80\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    assert!(!answer.contains(ENVIRONMENT), "{answer}");

    browser.stop().await;
    drop(dev);
}

/// `GET PATH` on `address` (`127.0.0.1:PORT`), answered as one string.
fn get(address: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstart_ui_serves_what_the_kubeconfig_context_reaches_and_names_an_unknown_context() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};

    let dev = Dev::start(&["--no-operators", "examples/environment.yaml"]);
    let kubeconfig = std::fs::read_to_string(&dev.kubeconfig).unwrap();
    let context = kubeconfig
        .lines()
        .find_map(|l| l.strip_prefix("current-context: "))
        .expect("a current context")
        .trim()
        .to_owned();
    let ui = |context: &str| {
        Command::new(env!("CARGO_BIN_EXE_upstart"))
            .args(["ui", "--port", "0", "--context", context, "--kubeconfig"])
            .arg(&dev.kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    let mut running = ui(&context);
    let mut line = String::new();
    std::io::BufReader::new(running.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("web view: http://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let answer = get(&address, "/api/environments");
            if answer.contains(ENVIRONMENT) || std::time::Instant::now() > deadline {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    let _ = running.kill();
    let _ = running.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(&format!("\"name\":\"{ENVIRONMENT}\"")),
        "{answer}"
    );

    let out = ui("no-such-context").wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "has no context no-such-context (it has: {context})"
        )),
        "{stderr}"
    );
    drop(dev);
}
