//! Requeue delays after failed reconciles: exponential backoff with jitter and a cap, counted
//! per object and reset on success.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

/// `min(base × 2^failures, cap)`: the delay after a reconcile that failed with `failures`
/// earlier consecutive failures (0 for the first one).
pub fn backoff_delay(base: Duration, cap: Duration, failures: u32) -> Duration {
    // 2^31 × any base overflows or passes any sensible cap; stop doubling well before.
    let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

/// `delay` shortened by up to `jitter` (a fraction in 0..=1) of itself: `unit` (in 0..1) picks
/// where in that range. Shortening (never lengthening) keeps the result within the cap.
pub fn apply_jitter(delay: Duration, jitter: f64, unit: f64) -> Duration {
    let cut = (jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0)).min(1.0);
    delay.mul_f64(1.0 - cut)
}

/// How requeue delays grow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
    /// Fraction of each delay that is randomly cut off, so that objects failing together do
    /// not retry together.
    pub jitter: f64,
}

impl Default for BackoffPolicy {
    /// 1 s doubling to 5 min, with 20 % jitter.
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl BackoffPolicy {
    /// The jittered delay after a failure with `failures` earlier consecutive failures.
    pub fn delay(&self, failures: u32) -> Duration {
        let unit: f64 = rand::rng().random();
        apply_jitter(
            backoff_delay(self.base, self.cap, failures),
            self.jitter,
            unit,
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
}

/// Consecutive failures per object (key: typically `ObjectRef<K>`), for `error_policy`:
///
/// ```
/// use std::time::Duration;
/// use upstart_operator_runtime::{BackoffPolicy, FailureBackoff};
///
/// let backoff = FailureBackoff::new(BackoffPolicy { jitter: 0.0, ..BackoffPolicy::default() });
/// assert_eq!(backoff.on_failure("ns/a"), Duration::from_secs(1)); // in error_policy:
/// assert_eq!(backoff.on_failure("ns/a"), Duration::from_secs(2)); // Action::requeue(delay)
/// backoff.on_success(&"ns/a"); // at the end of a successful reconcile
/// assert_eq!(backoff.failures(&"ns/a"), 0);
/// ```
///
/// Entries of objects that stopped failing without a reported success (deleted objects) are
/// dropped once they are older than twice the cap, so the map stays bounded by the objects
/// failing recently.
#[derive(Debug)]
pub struct FailureBackoff<Key> {
    policy: BackoffPolicy,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl<Key: Hash + Eq + Clone> Default for FailureBackoff<Key> {
    fn default() -> Self {
        Self::new(BackoffPolicy::default())
    }
}

/// Above this many entries, stale ones are swept on the next failure.
const SWEEP_THRESHOLD: usize = 1024;

impl<Key: Hash + Eq + Clone> FailureBackoff<Key> {
    /// An empty store using `policy`.
    pub fn new(policy: BackoffPolicy) -> Self {
        FailureBackoff {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // Plain counters: nothing a panic could leave inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a failure of `key` and returns how long to wait before retrying it.
    pub fn on_failure(&self, key: Key) -> Duration {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() > SWEEP_THRESHOLD {
            let stale = self.policy.cap.saturating_mul(2);
            entries.retain(|_, e| now.duration_since(e.last_failure) <= stale);
        }
        let entry = entries.entry(key).or_insert(Entry {
            failures: 0,
            last_failure: now,
        });
        let delay = self.policy.delay(entry.failures);
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        delay
    }

    /// Forgets the failures of `key` (after a successful reconcile, or its deletion).
    pub fn on_success(&self, key: &Key) {
        self.lock().remove(key);
    }

    /// Consecutive failures of `key` so far.
    pub fn failures(&self, key: &Key) -> u32 {
        self.lock().get(key).map_or(0, |e| e.failures)
    }

    /// How many objects are currently counted.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no object is counted.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn delay_doubles_from_the_base_until_the_cap() {
        let cap = Duration::from_secs(60);
        let delays: Vec<u64> = (0..8).map(|f| backoff_delay(S, cap, f).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn delay_grows_monotonically_and_stays_within_the_cap_for_any_settings() {
        let durations =
            [0, 1, 7, 100, 1_000, 30_000, 300_000, u64::MAX / 4].map(Duration::from_millis);
        for base in durations {
            for cap in durations {
                let mut previous = Duration::ZERO;
                for failures in 0..80 {
                    let delay = backoff_delay(base, cap, failures);
                    assert!(delay <= cap, "{base:?} {cap:?} {failures}");
                    assert!(delay >= previous, "{base:?} {cap:?} {failures}");
                    if let Some(exact) = base.checked_mul(1 << failures.min(31))
                        && failures < 31
                        && exact <= cap
                    {
                        assert_eq!(delay, exact);
                    }
                    previous = delay;
                }
            }
        }
    }

    #[test]
    fn delay_never_overflows_for_huge_failure_counts() {
        let cap = Duration::from_secs(300);
        assert_eq!(backoff_delay(S, cap, 31), cap);
        assert_eq!(backoff_delay(S, cap, 32), cap);
        assert_eq!(backoff_delay(S, cap, u32::MAX), cap);
        assert_eq!(backoff_delay(Duration::MAX, cap, 3), cap);
    }

    #[test]
    fn jitter_only_shortens_and_by_at_most_its_fraction() {
        let d = Duration::from_secs(10);
        assert_eq!(apply_jitter(d, 0.2, 0.0), d);
        assert_eq!(apply_jitter(d, 0.2, 0.5), Duration::from_secs(9));
        assert_eq!(apply_jitter(d, 0.0, 0.9), d);
        assert_eq!(apply_jitter(d, 5.0, 1.0), Duration::ZERO);
        for _ in 0..1000 {
            let j = BackoffPolicy::default().delay(20);
            assert!(
                j <= Duration::from_secs(300) && j >= Duration::from_secs(240),
                "{j:?}"
            );
        }
    }

    #[test]
    fn failures_are_counted_per_object_and_reset_on_success() {
        let backoff = FailureBackoff::new(BackoffPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            jitter: 0.0,
        });
        let delays: Vec<u128> = (0..6)
            .map(|_| backoff.on_failure("a").as_millis())
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.on_failure("b"), Duration::from_millis(100));
        assert_eq!(backoff.failures(&"a"), 6);
        backoff.on_success(&"a");
        assert_eq!(backoff.failures(&"a"), 0);
        assert_eq!(backoff.on_failure("a"), Duration::from_millis(100));
        assert_eq!(backoff.len(), 2);
    }

    #[test]
    fn stale_entries_are_swept_once_many_objects_are_counted() {
        let backoff = FailureBackoff::new(BackoffPolicy {
            base: Duration::from_millis(1),
            cap: Duration::ZERO,
            jitter: 0.0,
        });
        for i in 0..=SWEEP_THRESHOLD {
            backoff.on_failure(i);
        }
        std::thread::sleep(Duration::from_millis(5));
        backoff.on_failure(usize::MAX);
        assert_eq!(backoff.len(), 1);
    }
}
