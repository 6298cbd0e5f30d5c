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
    browser.stop().await;
    drop(dev);
}
