//! A sample of issue 15's crash-at-every-write harness (`upstart_e2e::crash`): each scenario
//! crashed at a few of its writes (the first, one in the middle, the last), the restarted
//! operators' first watch answered 410, and every invariant checked; then each other variant
//! (graceful stop, 409/429/500, a stolen Lease, lagging watches, a SIGKILL of the operator
//! binary) once, at a write in the middle of the chain's first install. The bench `crash_points` runs every write of every variant.

use upstart_e2e::crash::{
    CrashOptions, CrashPoints, LoopReport, Scenario, Variant, crash_loop, run_once,
};

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

/// The chain with `variant` at its 12th write (the first release's, mid-install: a hook or an
/// object apply); fails on any invariant violation.
async fn chain_at_write_12(variant: Variant) -> Result<(), upstart_e2e::Error> {
    let options = CrashOptions {
        variant,
        ..CrashOptions::default()
    };
    let run = run_once(Scenario::Chain, Some(12), &options).await?;
    eprintln!("{variant}: {run:?}");
    assert!(run.crashed, "write 12 was reached: {run:?}");
    assert!(
        run.violations.is_empty(),
        "{variant}: {:#?}",
        run.violations
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_survives_a_graceful_stop_that_releases_the_leases_mid_install()
-> Result<(), upstart_e2e::Error> {
    chain_at_write_12(Variant::GracefulStop).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_survives_a_conflict_answered_to_a_write() -> Result<(), upstart_e2e::Error> {
    chain_at_write_12(Variant::Fail(409)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_survives_too_many_requests_with_retry_after_answered_to_a_write()
-> Result<(), upstart_e2e::Error> {
    chain_at_write_12(Variant::Fail(429)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_survives_an_internal_error_answered_to_a_write() -> Result<(), upstart_e2e::Error> {
    chain_at_write_12(Variant::Fail(500)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_whose_lease_is_taken_stops_writing_and_the_other_instance_finishes()
-> Result<(), upstart_e2e::Error> {
    chain_at_write_12(Variant::LeaseStolen).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_survives_a_crash_under_delayed_coalesced_reordered_watches_and_lagging_lists()
-> Result<(), upstart_e2e::Error> {
    chain_at_write_12(Variant::LaggingWatches).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_survives_a_sigkill_of_the_operator_binary() -> Result<(), upstart_e2e::Error> {
    // The binary is built with the workspace's tests (it has integration tests of its own).
    chain_at_write_12(Variant::Sigkill).await
}
