//! A sample of issue 15's crash-at-every-write harness (`upstart_e2e::crash`): each scenario
//! crashed at a few of its writes (the first, one in the middle, the last), the restarted
//! operators' first watch answered 410, and every invariant checked. The bench `crash_points`
//! runs every write.

use upstart_e2e::crash::{CrashOptions, CrashPoints, LoopReport, Scenario, crash_loop};

/// Crashes `scenario` at 3 of its writes; fails on any invariant violation.
async fn sample(scenario: Scenario, least_writes: u32) -> Result<LoopReport, upstart_e2e::Error> {
    let report = crash_loop(
        scenario,
        &CrashPoints::Spread(3),
        &CrashOptions::default(),
        |run| eprintln!("{run:?}"),
    )
    .await?;
    eprint!("{report}");
    assert!(
        report.recording.writes >= least_writes,
        "the recorded run writes: {report}"
    );
    // Runs differ by a few writes (timing): a sampled write past a run's end is not reached,
    // and that run is checked as an uninterrupted one.
    for run in &report.runs {
        let n = run.crash_at.unwrap_or_default();
        assert!(
            run.crashed || run.writes < n,
            "write {n} was not reached: {run:?}"
        );
    }
    assert!(report.crashed_at() >= 2, "{report}");
    assert!(report.violations().is_empty(), "{report}");
    Ok(report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_survives_crashes_at_a_sample_of_its_writes() -> Result<(), upstart_e2e::Error> {
    sample(Scenario::Chain, 30).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_rotation_survives_crashes_at_a_sample_of_its_writes()
-> Result<(), upstart_e2e::Error> {
    sample(Scenario::OutputRotation, 5).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_teardown_survives_crashes_at_a_sample_of_its_writes()
-> Result<(), upstart_e2e::Error> {
    sample(Scenario::EnvironmentTeardown, 5).await.map(drop)
}
