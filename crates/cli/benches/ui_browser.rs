//! How fast the web view is for a 100-release environment, measured in headless chromium:
//! the page's load time until the graph is drawn (the `graph-drawn` performance mark, from the
//! start of navigation), and the update latency from a status change written to the API to the
//! node's class changing in the page (a MutationObserver's `Date.now()` minus the time before
//! the write; browser and bench share the machine's clock).
//!
//! `cargo bench -p upstart-cli --bench ui_browser` (needs chromium and chromedriver, as
//! scripts/bootstrap-tools installs them). Figures are printed, never asserted.
//!
//! The environment: 10 services of 10 releases each, every release depending on the previous
//! one of its service (10 install levels), started by `upstart dev --no-operators`: the
//! UpstartServices and HelmReleases are created and the releases' status written by this
//! bench, as the operators would.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark stops on the first failure and prints its figures"
)]

#[path = "../tests/support/browser.rs"]
#[allow(
    dead_code,
    reason = "the test's harness, of which the bench uses a part"
)]
mod browser;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use upstart_api::v1alpha1::{HelmRelease, UpstartService};

use browser::{Browser, Dev};

const NAME: &str = "bench-ui";
const SERVICES: usize = 10;
const PER_SERVICE: usize = 10;
const LOADS: usize = 7;
const UPDATES: usize = 30;

/// A service: releases `r0`..`r9`, each depending on the previous one.
fn service_spec() -> serde_json::Value {
    let releases: serde_json::Map<String, serde_json::Value> = (0..PER_SERVICE)
        .map(|r| {
            let mut release = json!({"chart": "upstart-charts/example-service"});
            if r > 0 {
                release["dependencies"] = json!([{"name": format!("r{}", r - 1)}]);
            }
            (format!("r{r}"), release)
        })
        .collect();
    json!({"helmReleases": releases})
}

fn environment() -> String {
    let services: Vec<serde_json::Value> = (0..SERVICES)
        .map(|s| json!({"name": format!("s{s}"), "spec": service_spec()}))
        .collect();
    let environment = json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "UpstartEnvironment",
        "metadata": {"name": NAME},
        "spec": {"services": services},
    });
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAME}});
    format!("{namespace}\n---\n{environment}\n")
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

fn status(phase: &str, ready: bool) -> serde_json::Value {
    json!({"status": {"phase": phase, "conditions": [{
        "type": "Ready", "status": if ready { "True" } else { "False" },
        "reason": phase, "message": if ready { "applied and healthy" } else { "waiting" },
        "lastTransitionTime": jiff::Timestamp::now().to_string()}]}})
}

fn summary(name: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: median {:.0} ms, p90 {:.0} ms, min {:.0} ms, max {:.0} ms ({} samples)",
        at(0.5),
        at(0.9),
        values[0],
        values[values.len() - 1],
        values.len()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let browser = Browser::start()
        .await
        .unwrap_or_else(|reason| panic!("{reason}"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("environment.yaml");
    std::fs::write(&file, environment()).unwrap();
    let dev = Dev::start(&["--no-operators", file.to_str().unwrap()]);
    let client = dev.client().await;
    let releases: Api<HelmRelease> = Api::namespaced(client.clone(), NAME);
    let services: Api<UpstartService> = Api::namespaced(client, NAME);
    // The namespace and the environment are applied after the web view starts.
    let mut names = Vec::new();
    for s in 0..SERVICES {
        let service: UpstartService = serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "UpstartService",
            "metadata": {"name": format!("s{s}")},
            "spec": service_spec(),
        }))
        .unwrap();
        loop {
            match services.create(&PostParams::default(), &service).await {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        for r in 0..PER_SERVICE {
            let name = upstart_api::names::child_name(&format!("s{s}"), &format!("r{r}"));
            let object: HelmRelease = serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "HelmRelease",
                "metadata": {"name": name},
                "spec": {"chart": "upstart-charts/example-service"},
            }))
            .unwrap();
            let created = loop {
                match releases.create(&PostParams::default(), &object).await {
                    Ok(created) => break created,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            let _ = created;
            releases
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(status("WaitingForDependencies", false)),
                )
                .await
                .unwrap();
            names.push(name);
        }
    }

    let page = format!("{}environments/{NAME}", dev.url);
    let mut loads = Vec::new();
    for _ in 0..LOADS {
        browser.client.goto(&page).await.unwrap();
        browser
            .wait_until(
                "the graph",
                "document.body.dataset.graph === 'drawn' && document.querySelectorAll('a.node').length === 100",
                Duration::from_secs(30),
            )
            .await;
        let drawn = browser
            .eval("return performance.getEntriesByName('graph-drawn')[0].startTime;")
            .await;
        loads.push(drawn.as_f64().unwrap());
    }

    // UPSTART_UI_SCREENSHOTS=DIR: what a 100-release graph looks like.
    browser.screenshot_if_asked("ui-100-releases").await;

    let mut latencies = Vec::new();
    for name in names.iter().take(UPDATES) {
        let id = format!("release-{name}");
        browser
            .eval(&format!(
                "const node = document.getElementById('{id}'); window.flipped = null;
                 new MutationObserver((_, observer) => {{
                   if (node.classList.contains('ready')) {{ window.flipped = Date.now(); observer.disconnect(); }}
                 }}).observe(node, {{attributes: true, attributeFilter: ['class']}});
                 return null;"
            ))
            .await;
        let before = now_ms();
        releases
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(status("Ready", true)),
            )
            .await
            .unwrap();
        browser
            .wait_until(
                "the node to turn Ready",
                "window.flipped !== null",
                Duration::from_secs(10),
            )
            .await;
        let flipped = browser
            .eval("return window.flipped;")
            .await
            .as_f64()
            .unwrap();
        latencies.push(flipped - before);
    }
    println!(
        "web view, environment of {} releases ({SERVICES} services x {PER_SERVICE}, {PER_SERVICE} levels), headless chromium:",
        SERVICES * PER_SERVICE
    );
    summary("page load to graph drawn", loads);
    summary("status change to node class change", latencies);
    browser.stop().await;
    drop(dev);
}
