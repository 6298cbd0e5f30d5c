//! Helm parity (issue 13): the whole corpus `e2e/charts/parity/` installed, upgraded and
//! uninstalled by the pinned `helm` and by a `HelmRelease` on one local control plane; every
//! difference not listed in docs/architecture.md ("Differences from helm install") fails.
//! `UPSTART_PARITY_ONLY=a,b` runs only those charts.

use upstart_e2e::parity::{self, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_chart_installs_upgrades_and_uninstalls_as_helm_does()
-> Result<(), upstart_e2e::Error> {
    let workspace = upstart_e2e::TestEnv::workspace_path(".");
    let only: Vec<String> = std::env::var("UPSTART_PARITY_ONLY")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let full = only.is_empty();
    let report = parity::run(
        &workspace,
        &Options {
            only,
            ..Options::default()
        },
    )
    .await?;
    eprint!("{report}");
    if full {
        assert!(report.cases.len() >= 25, "the corpus shrank: {report}");
    }
    assert!(
        report.undocumented.is_empty(),
        "differences from helm that docs/architecture.md does not list:\n{report}"
    );
    Ok(())
}
