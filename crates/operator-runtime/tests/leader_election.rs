//! Leader election against the in-process control plane: one winner, hand-over on release,
//! take-over after expiry, and giving up when renewals fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio::time::Instant;
use upstart_control_plane::{ControlPlane, Fault, Gate, Options, PausePoint, Verb};
use upstart_operator_runtime::{Error, LeaderElector, LeaseConfig, Shutdown};

fn config(name: &str, identity: &str, lease_ms: u64, renew_ms: u64, retry_ms: u64) -> LeaseConfig {
    LeaseConfig {
        namespace: "default".into(),
        name: name.into(),
        identity: identity.into(),
        lease_duration: Duration::from_millis(lease_ms),
        renew_deadline: Duration::from_millis(renew_ms),
        retry_period: Duration::from_millis(retry_ms),
    }
}

async fn lease(cp: &ControlPlane, name: &str) -> Lease {
    Api::<Lease>::namespaced(cp.client(), "default")
        .get(name)
        .await
        .expect("lease exists")
}

fn holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref().and_then(|s| s.holder_identity.clone())
}

/// Runs `elector` until its leadership ends, its work waiting on the token; returns once it
/// leads, with the task to join.
async fn leading(
    elector: LeaderElector,
) -> anyhow::Result<tokio::task::JoinHandle<Result<Option<()>, Error>>> {
    let (leading_tx, leading_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        elector
            .run_while_leader(Shutdown::new(), |token| async move {
                let _ = leading_tx.send(());
                token.shutdown().wait().await;
            })
            .await
    });
    leading_rx.await?;
    Ok(task)
}

/// Rewrites the holder of the Lease `name` behind its holder's back (a person, or a candidate
/// with a skewed view), renewed now.
async fn give_lease(cp: &ControlPlane, name: &str, to: &str) -> anyhow::Result<()> {
    let api = Api::<Lease>::namespaced(cp.client(), "default");
    let mut taken = api.get(name).await?;
    if let Some(spec) = taken.spec.as_mut() {
        spec.holder_identity = Some(to.into());
        spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            k8s_openapi::jiff::Timestamp::now(),
        ));
    }
    api.replace(name, &Default::default(), &taken).await?;
    Ok(())
}

#[tokio::test]
async fn exactly_one_of_two_racing_electors_wins_a_missing_lease() -> anyhow::Result<()> {
    for round in 0..10 {
        let cp = ControlPlane::start(Options::default());
        let name = format!("race-{round}");
        let a = LeaderElector::new(cp.client(), config(&name, "a", 5000, 3000, 500))?;
        let b = LeaderElector::new(cp.client(), config(&name, "b", 5000, 3000, 500))?;
        // A no-op fault, to count the creates that reach the API.
        let creates = cp.faults().inject(
            Fault::on(Verb::Create)
                .resource("leases")
                .always()
                .delay(Duration::ZERO),
        );
        let (won_a, won_b) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
        let (won_a, won_b) = (won_a?, won_b?);
        assert!(won_a ^ won_b, "round {round}: a={won_a} b={won_b}");
        assert_eq!(
            cp.faults().hits(creates),
            2,
            "both tried to create: a real race"
        );
        let expected = if won_a { "a" } else { "b" };
        assert_eq!(holder(&lease(&cp, &name).await).as_deref(), Some(expected));
    }
    Ok(())
}

#[tokio::test]
async fn exactly_one_of_two_racing_electors_wins_a_released_lease() -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let old = LeaderElector::new(cp.client(), config("released", "old", 5000, 3000, 500))?;
    assert!(old.try_acquire_or_renew().await?);
    let a = LeaderElector::new(cp.client(), config("released", "a", 5000, 3000, 500))?;
    let b = LeaderElector::new(cp.client(), config("released", "b", 5000, 3000, 500))?;
    for _ in 0..10 {
        // Everyone has seen the held lease; the holder releases; both race for it.
        assert!(!a.try_acquire_or_renew().await? || !b.try_acquire_or_renew().await?);
        let winner_before = holder(&lease(&cp, "released").await);
        let releaser = match winner_before.as_deref() {
            Some("old") => &old,
            Some("a") => &a,
            _ => &b,
        };
        assert!(releaser.release().await?);
        assert_eq!(holder(&lease(&cp, "released").await), None);
        let updates = cp.faults().inject(
            Fault::on(Verb::Update)
                .resource("leases")
                .always()
                .delay(Duration::ZERO),
        );
        let (won_a, won_b) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
        assert!(won_a? ^ won_b?, "exactly one wins");
        // Both read the free lease and both wrote: the resourceVersion guard refused one.
        assert_eq!(
            cp.faults().hits(updates),
            2,
            "both tried to take it: a real race"
        );
        cp.faults().remove(updates);
    }
    Ok(())
}

#[tokio::test]
async fn the_lease_records_holder_times_duration_and_transitions() -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let a = LeaderElector::new(cp.client(), config("record", "a", 1000, 600, 100))?;
    assert!(a.try_acquire_or_renew().await?);
    let spec = lease(&cp, "record").await.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert_eq!(spec.lease_transitions, Some(0));
    let acquired = spec.acquire_time.expect("acquireTime").0;
    let first_renew = spec.renew_time.expect("renewTime").0;

    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(a.try_acquire_or_renew().await?);
    let spec = lease(&cp, "record").await.spec.expect("spec");
    assert_eq!(
        spec.acquire_time.expect("acquireTime").0,
        acquired,
        "a renewal keeps acquireTime"
    );
    assert!(
        spec.renew_time.expect("renewTime").0 > first_renew,
        "a renewal moves renewTime"
    );
    assert_eq!(spec.lease_transitions, Some(0));

    assert!(a.release().await?);
    let b = LeaderElector::new(cp.client(), config("record", "b", 1000, 600, 100))?;
    assert!(b.try_acquire_or_renew().await?);
    let spec = lease(&cp, "record").await.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    Ok(())
}

#[tokio::test]
async fn a_standby_takes_over_at_once_when_the_leader_releases_on_shutdown() -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    // A long lease duration: a take-over within it can only come from the release.
    let a = LeaderElector::new(cp.client(), config("handover", "a", 10_000, 6_000, 100))?;
    let b = LeaderElector::new(cp.client(), config("handover", "b", 10_000, 6_000, 100))?;
    let shutdown_a = Shutdown::new();
    let a_leads = Arc::new(AtomicBool::new(false));
    let a_task = tokio::spawn({
        let shutdown_a = shutdown_a.clone();
        let a_leads = a_leads.clone();
        async move {
            a.run_while_leader(shutdown_a, |token| async move {
                a_leads.store(true, Ordering::SeqCst);
                token.shutdown().wait().await;
                // Finishing in-flight work: the lease must stay held meanwhile.
                tokio::time::sleep(Duration::from_millis(300)).await;
                a_leads.store(false, Ordering::SeqCst);
                "a done"
            })
            .await
        }
    });
    while !a_leads.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (b_started_tx, b_started_rx) = tokio::sync::oneshot::channel();
    let b_shutdown = Shutdown::new();
    let b_task = tokio::spawn({
        let b_shutdown = b_shutdown.clone();
        async move {
            b.run_while_leader(b_shutdown, |token| async move {
                let _ = b_started_tx.send(Instant::now());
                token.shutdown().wait().await;
            })
            .await
        }
    });
    // B stays standby while A renews (several retry periods).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(holder(&lease(&cp, "handover").await).as_deref(), Some("a"));

    let stop_requested = Instant::now();
    shutdown_a.trigger();
    let a_result = a_task.await?;
    assert_eq!(a_result?, Some("a done"));
    let b_started = tokio::time::timeout(Duration::from_secs(3), b_started_rx).await??;
    assert!(
        b_started.duration_since(stop_requested) >= Duration::from_millis(300),
        "B started while A was still finishing its work"
    );
    assert!(
        b_started.duration_since(stop_requested) < Duration::from_secs(2),
        "B took {:?}: the lease was not released",
        b_started.duration_since(stop_requested)
    );
    assert_eq!(holder(&lease(&cp, "handover").await).as_deref(), Some("b"));

    b_shutdown.trigger();
    b_task.await??;
    assert_eq!(
        holder(&lease(&cp, "handover").await),
        None,
        "B released on shutdown"
    );
    Ok(())
}

#[tokio::test]
async fn a_standby_takes_over_once_the_leader_stops_renewing() -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let a = LeaderElector::new(cp.client(), config("expiry", "a", 1000, 600, 100))?;
    let b = LeaderElector::new(cp.client(), config("expiry", "b", 1000, 600, 100))?;
    // A acquires once and then goes silent, as a hung or partitioned leader does.
    assert!(a.try_acquire_or_renew().await?);
    let started = Instant::now();
    assert!(b.acquire(&Shutdown::new()).await?);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "took over after {waited:?}, before expiry"
    );
    assert!(
        waited < Duration::from_secs(3),
        "took over after {waited:?}"
    );
    let spec = lease(&cp, "expiry").await.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    // The old leader, back, sees it lost the lease.
    assert!(!a.try_acquire_or_renew().await?);
    Ok(())
}

#[tokio::test]
async fn a_leader_that_cannot_renew_within_the_deadline_stops_its_work_and_reports_it()
-> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let a = LeaderElector::new(cp.client(), config("deadline", "a", 2000, 600, 100))?;
    let (leading_tx, leading_rx) = tokio::sync::oneshot::channel();
    let token_seen = Arc::new(std::sync::Mutex::new(None::<Shutdown>));
    let task = tokio::spawn({
        let token_seen = token_seen.clone();
        async move {
            a.run_while_leader(Shutdown::new(), |token| async move {
                *token_seen.lock().expect("not poisoned") = Some(token.shutdown().clone());
                let _ = leading_tx.send(());
                std::future::pending::<()>().await;
            })
            .await
        }
    });
    leading_rx.await?;
    let broken = Instant::now();
    cp.faults().inject(
        Fault::on(Verb::Update)
            .resource("leases")
            .always()
            .fail(500),
    );
    let result = tokio::time::timeout(Duration::from_secs(5), task).await??;
    assert!(
        matches!(result, Err(Error::LeadershipLost { .. })),
        "{result:?}"
    );
    // The work itself is dropped; its token fired for whatever it spawned.
    let token = token_seen.lock().expect("not poisoned").clone();
    assert!(
        token.is_some_and(|t| t.is_triggered()),
        "the work was told to stop"
    );
    let lost_after = broken.elapsed();
    assert!(
        lost_after < Duration::from_millis(2000),
        "gave up after {lost_after:?}, past the lease duration"
    );
    Ok(())
}

#[tokio::test]
async fn a_leader_whose_lease_is_taken_stops_its_work() -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let a = LeaderElector::new(cp.client(), config("stolen", "a", 5000, 3000, 100))?;
    let task = leading(a).await?;
    give_lease(&cp, "stolen", "intruder").await?;
    let result = tokio::time::timeout(Duration::from_secs(3), task).await??;
    assert!(
        matches!(result, Err(Error::LeadershipLost { .. })),
        "{result:?}"
    );
    assert_eq!(
        holder(&lease(&cp, "stolen").await).as_deref(),
        Some("intruder"),
        "not released by a non-holder"
    );
    Ok(())
}

#[tokio::test]
async fn a_standby_shut_down_before_leading_never_runs_its_work() -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let a = LeaderElector::new(cp.client(), config("never", "a", 5000, 3000, 100))?;
    assert!(a.try_acquire_or_renew().await?);
    let b = LeaderElector::new(cp.client(), config("never", "b", 5000, 3000, 100))?;
    let shutdown = Shutdown::new();
    let ran = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        let ran = ran.clone();
        async move {
            b.run_while_leader(
                shutdown,
                |_| async move { ran.store(true, Ordering::SeqCst) },
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.trigger();
    let result = tokio::time::timeout(Duration::from_secs(2), task).await??;
    assert!(matches!(result, Ok(None)), "{result:?}");
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(holder(&lease(&cp, "never").await).as_deref(), Some("a"));
    Ok(())
}

#[tokio::test]
async fn a_leader_whose_lease_is_stolen_by_another_elector_stops_its_work_at_once()
-> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    // lease duration − renew deadline = 4 s: what the old leader used to get after the loss.
    let a = LeaderElector::new(cp.client(), config("taken", "a", 6000, 2000, 100))?;
    let b = LeaderElector::new(cp.client(), config("taken", "b", 6000, 2000, 100))?;
    let (leading_tx, leading_rx) = tokio::sync::oneshot::channel();
    let writes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let task = tokio::spawn({
        let writes = writes.clone();
        async move {
            a.run_while_leader(Shutdown::new(), |_token| async move {
                let _ = leading_tx.send(());
                // In-flight work that does not look at its token: it must still stop.
                loop {
                    writes.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
        }
    });
    leading_rx.await?;
    // The lease handed to b behind a's back: b renews it as its own from now on.
    let api = Api::<Lease>::namespaced(cp.client(), "default");
    let mut stolen = api.get("taken").await?;
    if let Some(spec) = stolen.spec.as_mut() {
        spec.holder_identity = Some("b".into());
    }
    api.replace("taken", &Default::default(), &stolen).await?;
    let stolen_at = Instant::now();
    let b_leads = Arc::new(AtomicBool::new(false));
    let b_task = tokio::spawn({
        let b_leads = b_leads.clone();
        async move {
            b.run_while_leader(Shutdown::new(), |token| async move {
                b_leads.store(true, Ordering::SeqCst);
                token.shutdown().wait().await;
            })
            .await
        }
    });
    let result = tokio::time::timeout(Duration::from_secs(3), task).await??;
    let stopped_after = stolen_at.elapsed();
    assert!(
        matches!(result, Err(Error::LeadershipLost { .. })),
        "{result:?}"
    );
    assert!(
        stopped_after < Duration::from_millis(1500),
        "the old leader's work ran {stopped_after:?} after the lease was taken"
    );
    let after_loss = writes.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        writes.load(Ordering::SeqCst),
        after_loss,
        "no work of the old leader once it knows it lost the lease"
    );
    assert!(b_leads.load(Ordering::SeqCst), "b leads");
    assert_eq!(holder(&lease(&cp, "taken").await).as_deref(), Some("b"));
    b_task.abort();
    Ok(())
}

#[tokio::test]
async fn a_leader_whose_renewal_conflicts_reads_the_lease_again_at_once() -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    // A long retry period: a leader that waited it out after the conflict would run on for 2 s.
    let a = LeaderElector::new(
        cp.client_tagged("a"),
        config("conflict", "a", 6000, 5000, 2000),
    )?;
    let task = leading(a).await?;
    // The leader's next renewal reads the Lease (still its own) and is held there; the Lease is
    // taken meanwhile, so the renewal's update conflicts.
    let gate = Gate::new();
    let read = cp.faults().inject(
        Fault::on(Verb::Get)
            .resource("leases")
            .client("a")
            .pause(gate.clone(), PausePoint::AfterCommit),
    );
    gate.wait_reached().await;
    give_lease(&cp, "conflict", "b").await?;
    let taken = Instant::now();
    gate.open();
    let result = tokio::time::timeout(Duration::from_secs(5), task).await??;
    let stopped_after = taken.elapsed();
    assert!(
        matches!(result, Err(Error::LeadershipLost { .. })),
        "{result:?}"
    );
    assert_eq!(cp.faults().hits(read), 1, "the held read was the renewal's");
    assert!(
        stopped_after < Duration::from_millis(1000),
        "the leader ran on for {stopped_after:?} after its renewal conflicted"
    );
    assert_eq!(holder(&lease(&cp, "conflict").await).as_deref(), Some("b"));
    Ok(())
}
