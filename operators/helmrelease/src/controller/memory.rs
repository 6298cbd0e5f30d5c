//! What this process remembers of each release between reconciles ([`ReleaseMemory`]), and
//! the [`Context`] methods that read and write it. See docs/architecture.md, "Release memory".

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use upstart_api::v1alpha1::HelmRelease;

use crate::controller::Context;
use crate::controller::applied::AppliedVersion;

/// What this process remembers of one release. In memory on purpose: it is timing and
/// bookkeeping of this process; after a restart the interval clock starts when the release is
/// first looked at (nothing is re-rendered for a restart alone), and an answered foreign write
/// costs at most one no-op apply per object in `corrected`.
#[derive(Debug, Default)]
pub(in crate::controller) struct ReleaseMemory {
    /// When it was last applied (the interval re-apply clock), and whether that apply rendered
    /// as an upgrade: a re-apply renders the same way, so it is the same render (a render
    /// cache hit, no helm process).
    pub(in crate::controller) last_applied: Option<LastApply>,
    /// When this process first looked at the release: the interval clock until it applies it.
    pub(in crate::controller) first_seen: Option<std::time::Instant>,
    /// When this process wrote its flip to Ready: the precise start of a hand-off (`readyAt`
    /// in status has whole seconds only).
    pub(in crate::controller) became_ready: Option<std::time::Instant>,
    /// The resourceVersion of the release after this process last wrote its status: a cached
    /// copy with another version may predate that write (see `reconcile`).
    pub(in crate::controller) written_version: Option<String>,
    /// The objects (by [`object_key`](crate::controller::observe::object_key)) this process
    /// applied, with what its last apply of each returned. They carry this release's label, so
    /// no other release can have taken them (a re-apply needs no read to check), and a cached
    /// copy holding that apply can stand for a read (see `applied`).
    pub(in crate::controller) applied: HashMap<String, AppliedVersion>,
    /// Per applied object (see [`object_key`](crate::controller::observe::object_key)): the
    /// newest write by another field manager that a re-apply already answered. A write our apply does not take back (a controller's
    /// annotation on the main resource) keeps its entry newer than ours; this stops it from
    /// counting as drift again.
    pub(in crate::controller) corrected: HashMap<String, Timestamp>,
}

/// Whether a reconcile may act on the cached `copy` of a release instead of reading the newest.
/// Never on a copy older than this process's last status write (`written_version`): a wake-up
/// by a workload event can come before that write reaches the cache, and a stale status would
/// apply (and run hooks) a second time. A copy older than someone else's write is fine: their
/// write's event comes next. A release being deleted is always read anew: once its teardown is
/// through, the finalizer goes and the memory with it, and a copy still in the cache would start
/// the teardown again and run its delete hooks a second time, with nobody left to delete them.
pub(in crate::controller) fn cached_copy_will_do(
    copy: &HelmRelease,
    written_version: Option<&str>,
) -> bool {
    copy.metadata.deletion_timestamp.is_none()
        && written_version
            .is_none_or(|written| copy.metadata.resource_version.as_deref() == Some(written))
}

/// The last apply of a release by this process.
#[derive(Clone, Copy, Debug)]
pub(in crate::controller) struct LastApply {
    at: std::time::Instant,
    /// Rendered as an upgrade.
    upgrade: bool,
}

impl Context {
    /// Updates what this process remembers of the release `key`.
    pub(in crate::controller) fn remember<T>(
        &self,
        key: &ObjectRef<HelmRelease>,
        update: impl FnOnce(&mut ReleaseMemory) -> T,
    ) -> T {
        let mut memory = self
            .memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        update(memory.entry(key.clone()).or_default())
    }

    /// Reads what this process remembers of the release `key`, if anything.
    pub(in crate::controller) fn recall<T>(
        &self,
        key: &ObjectRef<HelmRelease>,
        read: impl FnOnce(&ReleaseMemory) -> T,
    ) -> Option<T> {
        self.memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(key)
            .map(read)
    }

    /// Forgets the release `key` (it is deleted).
    pub(in crate::controller) fn forget(&self, key: &ObjectRef<HelmRelease>) {
        self.memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }

    pub(in crate::controller) fn record_apply(
        &self,
        key: &ObjectRef<HelmRelease>,
        is_upgrade: bool,
    ) {
        self.remember(key, |m| {
            m.last_applied = Some(LastApply {
                at: std::time::Instant::now(),
                upgrade: is_upgrade,
            });
        });
    }

    pub(in crate::controller) fn since_last_apply(
        &self,
        key: &ObjectRef<HelmRelease>,
    ) -> Option<Duration> {
        self.recall(key, |m| m.last_applied.map(|last| last.at.elapsed()))
            .flatten()
    }

    /// Whether the last apply of this process rendered as an upgrade; after a restart, yes.
    pub(in crate::controller) fn last_apply_was_upgrade(
        &self,
        key: &ObjectRef<HelmRelease>,
    ) -> bool {
        self.recall(key, |m| m.last_applied.map(|last| last.upgrade))
            .flatten()
            .unwrap_or(true)
    }

    /// Whether a foreign write at `at` on the object `object` of the release `key` is still to
    /// be put back.
    pub(in crate::controller) fn is_uncorrected(
        &self,
        key: &ObjectRef<HelmRelease>,
        object: &str,
        at: Timestamp,
    ) -> bool {
        self.recall(key, |m| m.corrected.get(object).copied())
            .flatten()
            .is_none_or(|corrected| at > corrected)
    }

    pub(in crate::controller) fn record_corrected(
        &self,
        key: &ObjectRef<HelmRelease>,
        edits: &[(String, Timestamp)],
    ) {
        self.remember(key, |m| {
            for (object, at) in edits {
                m.corrected.insert(object.clone(), *at);
            }
        });
    }

    pub(in crate::controller) fn since_became_ready(
        &self,
        key: &ObjectRef<HelmRelease>,
    ) -> Option<Duration> {
        self.recall(key, |m| m.became_ready.map(|at| at.elapsed()))
            .flatten()
    }

    /// Whether the interval re-apply is due ([`crate::decide::reapply_due`]); the first call
    /// for a release starts its clock.
    pub(in crate::controller) fn reapply_due(
        &self,
        key: &ObjectRef<HelmRelease>,
        interval: Duration,
    ) -> bool {
        let since_first_seen = self.remember(key, |m| {
            m.first_seen
                .get_or_insert_with(std::time::Instant::now)
                .elapsed()
        });
        crate::decide::reapply_due(self.since_last_apply(key), since_first_seen, interval)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn copy(resource_version: &str, deleting: bool) -> HelmRelease {
        let mut hr = HelmRelease::new("web", Default::default());
        hr.metadata.resource_version = Some(resource_version.to_owned());
        hr.metadata.deletion_timestamp = deleting.then(|| Time(Timestamp::now()));
        hr
    }

    #[test]
    fn a_copy_holding_our_last_write_or_any_copy_we_never_wrote_will_do() {
        assert!(cached_copy_will_do(&copy("7", false), Some("7")));
        assert!(cached_copy_will_do(&copy("7", false), None));
    }

    #[test]
    fn a_copy_older_than_our_last_write_is_read_anew() {
        assert!(!cached_copy_will_do(&copy("6", false), Some("7")));
    }

    #[test]
    fn a_release_being_deleted_is_read_anew_even_when_the_copy_holds_our_write() {
        assert!(!cached_copy_will_do(&copy("7", true), Some("7")));
        assert!(!cached_copy_will_do(&copy("7", true), None));
    }
}
