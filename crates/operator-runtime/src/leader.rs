//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics: candidates
//! take the Lease when it is free or its holder stopped renewing it for a lease duration, the
//! leader renews it every retry period and gives up if it cannot within the renew deadline, and
//! releases it on shutdown so that a standby takes over at once.
//!
//! Every write is an update carrying the `resourceVersion` that was read, so when two
//! candidates race for the same free Lease the apiserver accepts one update and answers the
//! other with 409 Conflict: two instances never both believe they lead.
//!
//! Written here rather than taken from a crate: `kube-leader-election` does not support kube 5,
//! and `kube-lease-manager` (which does) coordinates through server-side apply field-manager
//! conflicts and has no renew deadline, where the operators want client-go's
//! duration / renew deadline / retry period contract that the Helm chart exposes.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use rand::Rng;
use tokio::time::Instant;

use crate::{Error, Shutdown};

/// Where and how to hold the leader election Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name (one per operator).
    pub name: String,
    /// This candidate's identity, unique among candidates (see [`default_identity`]).
    pub identity: String,
    /// How long a Lease is valid after its last renewal; a standby takes over a Lease whose
    /// holder has not renewed it for this long (measured on the standby's own clock).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up the leadership.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A Lease `namespace/name` with a fresh [`default_identity`] and the Kubernetes default
    /// timings (15 s / 10 s / 2 s).
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: default_identity(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks the timings as client-go does: lease duration > renew deadline > retry period
    /// (with room for jitter), all positive, and an identity is set.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |why: &str| Err(Error::InvalidLeaseConfig(why.to_string()));
        if self.identity.is_empty() {
            return invalid("the identity is empty");
        }
        if self.name.is_empty() || self.namespace.is_empty() {
            return invalid("the lease name and namespace must be set");
        }
        if self.retry_period.is_zero() {
            return invalid("the retry period must be positive");
        }
        if self.lease_duration <= self.renew_deadline {
            return invalid("the lease duration must be longer than the renew deadline");
        }
        if self.renew_deadline <= self.retry_period.mul_f64(JITTER_FACTOR) {
            return invalid("the renew deadline must be longer than 1.2 × the retry period");
        }
        Ok(())
    }

    /// `leaseDurationSeconds` as written to the Lease (whole seconds, at least 1).
    fn lease_duration_seconds(&self) -> i32 {
        let secs = self.lease_duration.as_secs_f64().ceil();
        // Clamp: absurd durations must not wrap around.
        secs.clamp(1.0, f64::from(i32::MAX)) as i32
    }
}

/// Candidates wait up to this factor of the retry period between attempts, so that several
/// standbys do not hit the apiserver in lockstep.
const JITTER_FACTOR: f64 = 1.2;

/// This process's identity as a candidate: the pod name (`POD_NAME`, else the hostname, which
/// is the pod name in Kubernetes) and a random suffix, so that a restarted pod is a new
/// candidate.
pub fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "upstart".to_string());
    let suffix: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(8)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect();
    format!("{base}_{suffix}")
}

/// Given to the work while this instance leads.
#[derive(Debug, Clone)]
pub struct LeadershipToken {
    shutdown: Shutdown,
    identity: String,
}

impl LeadershipToken {
    /// Fires when the process shuts down or the leadership is lost: pass
    /// `token.shutdown().wait()` to `Controller::graceful_shutdown_on`.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// This leader's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }
}

/// What this candidate last saw of the Lease, and when (on the local clock): a Lease counts as
/// expired once it has not changed for its duration since we first saw this version of it, so
/// clock skew between nodes does not matter.
#[derive(Debug, Clone)]
struct Observed {
    record: Record,
    at: Instant,
}

#[derive(Debug, Clone, PartialEq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    acquire_time: Option<Timestamp>,
    transitions: i32,
    duration: Option<i32>,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Self {
        Record {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
            duration: spec.lease_duration_seconds,
        }
    }
}

/// What a candidate may do with a Lease it has just read (pure; see [`decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseDecision {
    /// Nobody holds it, or its holder let it expire: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it and renewed it recently: wait.
    Wait,
}

/// The leader election rule: `holder` is the Lease's `holderIdentity`, `unchanged_for` how long
/// the Lease has been seen unchanged, `lease_duration` its `leaseDurationSeconds`.
pub fn decide(
    holder: Option<&str>,
    identity: &str,
    unchanged_for: Duration,
    lease_duration: Duration,
) -> LeaseDecision {
    match holder.filter(|h| !h.is_empty()) {
        None => LeaseDecision::Acquire,
        Some(h) if h == identity => LeaseDecision::Renew,
        Some(_) if unchanged_for >= lease_duration => LeaseDecision::Acquire,
        Some(_) => LeaseDecision::Wait,
    }
}

/// A candidate for the leadership of one Lease.
///
/// The usual entry point is [`run_while_leader`](LeaderElector::run_while_leader); the steps
/// it is built from ([`try_acquire_or_renew`](LeaderElector::try_acquire_or_renew),
/// [`release`](LeaderElector::release)) are public for callers with other needs.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Mutex<Option<Observed>>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// A candidate for the Lease of `config`, whose timings are checked here.
    pub fn new(client: kube::Client, config: LeaseConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: Mutex::new(None),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    fn lease_error(&self, source: kube::Error) -> Error {
        Error::Lease {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }

    /// Records what was read and returns how long it has been seen unchanged.
    fn observe(&self, spec: &LeaseSpec) -> Duration {
        let record = Record::of(spec);
        let now = Instant::now();
        let mut observed = self
            .observed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match observed.as_ref() {
            Some(o) if o.record == record => now.duration_since(o.at),
            _ => {
                *observed = Some(Observed { record, at: now });
                Duration::ZERO
            }
        }
    }

    fn observed_holder(&self) -> Option<String> {
        self.observed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .and_then(|o| o.record.holder.clone())
    }

    /// One attempt: creates the Lease if missing, takes it if free or expired, renews it if
    /// ours. `Ok(true)` when this candidate holds it afterwards; `Ok(false)` when someone else
    /// does or won a race for it (409 Conflict).
    pub async fn try_acquire_or_renew(&self) -> Result<bool, Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.lease_error(e))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(self.config.lease_duration_seconds()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created.spec.unwrap_or_default());
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "created the lease and became the leader");
                    Ok(true)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(e) => Err(self.lease_error(e)),
            };
        };

        let spec = lease.spec.take().unwrap_or_default();
        let unchanged_for = self.observe(&spec);
        let record_duration = spec
            .lease_duration_seconds
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
            .unwrap_or(self.config.lease_duration);
        let decision = decide(
            spec.holder_identity.as_deref(),
            &self.config.identity,
            unchanged_for,
            record_duration,
        );
        if decision == LeaseDecision::Wait {
            return Ok(false);
        }
        let previous_holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mut next = spec;
        if decision == LeaseDecision::Acquire {
            next.acquire_time = Some(MicroTime(now));
            next.lease_transitions = Some(next.lease_transitions.unwrap_or(0) + 1);
        }
        next.holder_identity = Some(self.config.identity.clone());
        next.renew_time = Some(MicroTime(now));
        next.lease_duration_seconds = Some(self.config.lease_duration_seconds());
        lease.spec = Some(next);
        // `lease.metadata.resourceVersion` is the version just read: the update is refused with
        // 409 if anyone wrote the Lease in between.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(&updated.spec.unwrap_or_default());
                if decision == LeaseDecision::Acquire {
                    tracing::info!(
                        lease = %self.config.name,
                        identity = %self.config.identity,
                        previous = previous_holder.as_deref().unwrap_or(""),
                        "became the leader"
                    );
                }
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(self.lease_error(e)),
        }
    }

    /// Gives the Lease up if this candidate holds it: clears `holderIdentity` and sets
    /// `renewTime` to now with a one-second duration, so a standby takes it at its next
    /// attempt. `Ok(true)` when it was released.
    pub async fn release(&self) -> Result<bool, Error> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.lease_error(e))?
        else {
            return Ok(false);
        };
        let mut spec = lease.spec.take().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(false);
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(1);
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(&updated.spec.unwrap_or_default());
                tracing::info!(lease = %self.config.name, identity = %self.config.identity, "released the lease");
                Ok(true)
            }
            // Someone wrote it since we read it: it is no longer ours to release.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(self.lease_error(e)),
        }
    }

    /// Tries to acquire every retry period (with jitter) until it holds the Lease (`Ok(true)`)
    /// or `shutdown` fires (`Ok(false)`). API errors are logged and retried.
    pub async fn acquire(&self, shutdown: &Shutdown) -> Result<bool, Error> {
        let mut waiting_logged = false;
        loop {
            if shutdown.is_triggered() {
                return Ok(false);
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => return Ok(true),
                Ok(false) => {
                    if !waiting_logged {
                        tracing::info!(
                            lease = %self.config.name,
                            holder = self.observed_holder().as_deref().unwrap_or(""),
                            "another instance leads; waiting for the lease"
                        );
                        waiting_logged = true;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "acquiring the lease failed; retrying"),
            }
            let pause = self
                .config
                .retry_period
                .mul_f64(1.0 + rand::rng().random_range(0.0..(JITTER_FACTOR - 1.0)));
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.wait() => return Ok(false),
            }
        }
    }

    /// Renews every retry period until the leadership is lost: another holder appears, or no
    /// renewal succeeded within the renew deadline. Never returns while leading.
    async fn hold(&self) {
        let mut last_renewed = Instant::now();
        let mut read_again_now = false;
        loop {
            let reading_again = std::mem::take(&mut read_again_now);
            if !reading_again {
                tokio::time::sleep(self.config.retry_period).await;
            }
            let remaining = self
                .config
                .renew_deadline
                .saturating_sub(last_renewed.elapsed());
            if remaining.is_zero() {
                tracing::error!(lease = %self.config.name, "could not renew the lease within the renew deadline");
                return;
            }
            match tokio::time::timeout(remaining, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_renewed = Instant::now(),
                Ok(Ok(false)) => {
                    let holder = self.observed_holder();
                    if holder.as_deref() != Some(self.config.identity.as_str()) {
                        tracing::error!(lease = %self.config.name, holder = holder.as_deref().unwrap_or(""), "another instance took the lease");
                        return;
                    }
                    // Still ours as last read, yet the renewal conflicted: someone wrote the
                    // Lease since. Read it again at once (as client-go falls back from its
                    // optimistic update to a read) instead of leading blind for a retry period;
                    // once in a row, so that a Lease written over and over is not hammered.
                    tracing::debug!(lease = %self.config.name, "renewing the lease conflicted; reading it again");
                    read_again_now = !reading_again;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "renewing the lease failed; retrying"),
                Err(_) => tracing::warn!("renewing the lease timed out; retrying"),
            }
        }
    }

    /// Waits for the leadership, runs `work` while leading, and releases the Lease when the
    /// work has ended.
    ///
    /// - `shutdown` fires before the leadership is won: returns `Ok(None)` without running
    ///   `work`.
    /// - `work` ends by itself (typically because `shutdown` fired and it stopped gracefully,
    ///   seen through [`LeadershipToken::shutdown`]): the Lease is renewed until then, then
    ///   released; returns `Ok(Some(output))`.
    /// - The leadership is lost (renew deadline passed, or another holder): the token's
    ///   shutdown fires, `work` is dropped at once (no grace: another instance may already
    ///   lead, so in-flight writes must stop where they are), and [`Error::LeadershipLost`]
    ///   is returned. The process should then exit and restart as a
    ///   fresh candidate, as client-go controllers do.
    pub async fn run_while_leader<F, Fut>(
        self,
        shutdown: Shutdown,
        work: F,
    ) -> Result<Option<Fut::Output>, Error>
    where
        F: FnOnce(LeadershipToken) -> Fut,
        Fut: Future,
    {
        if !self.acquire(&shutdown).await? {
            return Ok(None);
        }
        let work_shutdown = shutdown.child();
        let token = LeadershipToken {
            shutdown: work_shutdown.clone(),
            identity: self.config.identity.clone(),
        };
        let mut work = Box::pin(work(token));
        let output = tokio::select! {
            output = &mut work => Some(output),
            () = self.hold() => None,
        };
        match output {
            Some(output) => {
                if let Err(e) = self.release().await {
                    tracing::warn!(error = %e, "releasing the lease failed; it will expire instead");
                }
                Ok(Some(output))
            }
            None => {
                // Stopped at once, as client-go programs do: another instance may already lead
                // (a stolen lease is held by someone else now), and any write from here on
                // races it. The work is dropped where it awaits, whatever it was doing; the
                // token fires too, for tasks it spawned that watch it.
                work_shutdown.trigger();
                drop(work);
                Err(Error::LeadershipLost {
                    namespace: self.config.namespace.clone(),
                    name: self.config.name.clone(),
                    renew_deadline: self.config.renew_deadline,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_free_lease_is_acquired() {
        assert_eq!(
            decide(None, "me", Duration::ZERO, SECOND),
            LeaseDecision::Acquire
        );
        assert_eq!(
            decide(Some(""), "me", Duration::ZERO, SECOND),
            LeaseDecision::Acquire
        );
    }

    #[test]
    fn our_own_lease_is_renewed_however_old() {
        assert_eq!(
            decide(Some("me"), "me", 10 * SECOND, SECOND),
            LeaseDecision::Renew
        );
    }

    #[test]
    fn another_holders_lease_is_taken_only_once_unchanged_for_its_duration() {
        assert_eq!(
            decide(Some("them"), "me", SECOND / 2, SECOND),
            LeaseDecision::Wait
        );
        assert_eq!(
            decide(Some("them"), "me", SECOND, SECOND),
            LeaseDecision::Acquire
        );
    }

    #[test]
    fn timings_must_leave_room_between_renewal_and_expiry() {
        let mut config = LeaseConfig::new("ns", "lease");
        config.validate().expect("defaults are valid");
        config.renew_deadline = config.lease_duration;
        assert!(config.validate().is_err());
        let mut config = LeaseConfig::new("ns", "lease");
        config.retry_period = config.renew_deadline;
        assert!(config.validate().is_err());
        let mut config = LeaseConfig::new("ns", "lease");
        config.identity.clear();
        assert!(config.validate().is_err());
    }

    #[test]
    fn identities_differ_between_candidates_of_one_host() {
        assert_ne!(default_identity(), default_identity());
    }

    #[test]
    fn sub_second_durations_round_up_to_one_second() {
        let mut config = LeaseConfig::new("ns", "lease");
        config.lease_duration = Duration::from_millis(300);
        assert_eq!(config.lease_duration_seconds(), 1);
        config.lease_duration = Duration::from_millis(1500);
        assert_eq!(config.lease_duration_seconds(), 2);
    }
}
