//! Counts of the requests served, by the way they came in and by verb: what a benchmark divides
//! by the work done to get the API requests an operator makes per object.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::faults::Verb;

/// How a request reached the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WayIn {
    /// Through [`crate::ControlPlane::client`], without sockets.
    InProcess,
    /// Over HTTPS ([`crate::ControlPlane::serve_https`]), e.g. from an operator in another process.
    Https,
}

/// Requests by verb. `other` counts what has no verb: discovery, `/version`, `/openapi`, unknown
/// paths and resource requests refused before a verb could be told (an unsupported method).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerbCounts {
    pub get: u64,
    pub list: u64,
    pub watch: u64,
    pub create: u64,
    pub update: u64,
    pub patch: u64,
    pub delete: u64,
    pub delete_collection: u64,
    pub other: u64,
}

impl VerbCounts {
    /// All requests counted here.
    pub fn total(&self) -> u64 {
        self.fields().iter().map(|(_, n)| n).sum()
    }

    /// The requests counted since `earlier` (a snapshot of the same counter taken before).
    pub fn since(&self, earlier: &VerbCounts) -> VerbCounts {
        VerbCounts {
            get: self.get.saturating_sub(earlier.get),
            list: self.list.saturating_sub(earlier.list),
            watch: self.watch.saturating_sub(earlier.watch),
            create: self.create.saturating_sub(earlier.create),
            update: self.update.saturating_sub(earlier.update),
            patch: self.patch.saturating_sub(earlier.patch),
            delete: self.delete.saturating_sub(earlier.delete),
            delete_collection: self
                .delete_collection
                .saturating_sub(earlier.delete_collection),
            other: self.other.saturating_sub(earlier.other),
        }
    }

    fn fields(&self) -> [(&'static str, u64); 9] {
        [
            ("get", self.get),
            ("list", self.list),
            ("watch", self.watch),
            ("create", self.create),
            ("update", self.update),
            ("patch", self.patch),
            ("delete", self.delete),
            ("deletecollection", self.delete_collection),
            ("other", self.other),
        ]
    }
}

/// `get 12, patch 3` (verbs never used are left out; `none` when nothing was counted).
impl fmt::Display for VerbCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let used: Vec<String> = self
            .fields()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(verb, n)| format!("{verb} {n}"))
            .collect();
        if used.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&used.join(", "))
        }
    }
}

/// The requests served so far, for each way in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub in_process: VerbCounts,
    pub https: VerbCounts,
}

impl RequestCounts {
    /// The requests counted since `earlier`, for each way in.
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts {
            in_process: self.in_process.since(&earlier.in_process),
            https: self.https.since(&earlier.https),
        }
    }
}

/// The live counters (one per way in and verb, plus `other`).
#[derive(Debug, Default)]
pub(crate) struct RequestCounter {
    counters: [[AtomicU64; 9]; 2],
}

impl RequestCounter {
    /// Counts one request; `verb` is `None` for requests without one.
    pub(crate) fn record(&self, way: WayIn, verb: Option<Verb>) {
        let index = match verb {
            Some(Verb::Get) => 0,
            Some(Verb::List) => 1,
            Some(Verb::Watch) => 2,
            Some(Verb::Create) => 3,
            Some(Verb::Update) => 4,
            Some(Verb::Patch) => 5,
            Some(Verb::Delete) => 6,
            Some(Verb::DeleteCollection) => 7,
            None => 8,
        };
        self.counters[way_index(way)][index].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RequestCounts {
        RequestCounts {
            in_process: self.verbs(WayIn::InProcess),
            https: self.verbs(WayIn::Https),
        }
    }

    fn verbs(&self, way: WayIn) -> VerbCounts {
        let c = &self.counters[way_index(way)];
        let n = |i: usize| c[i].load(Ordering::Relaxed);
        VerbCounts {
            get: n(0),
            list: n(1),
            watch: n(2),
            create: n(3),
            update: n(4),
            patch: n(5),
            delete: n(6),
            delete_collection: n(7),
            other: n(8),
        }
    }
}

fn way_index(way: WayIn) -> usize {
    match way {
        WayIn::InProcess => 0,
        WayIn::Https => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_way_in_and_verb() {
        let counter = RequestCounter::default();
        counter.record(WayIn::InProcess, Some(Verb::Get));
        counter.record(WayIn::InProcess, Some(Verb::Get));
        counter.record(WayIn::Https, Some(Verb::Patch));
        counter.record(WayIn::Https, None);
        let counts = counter.snapshot();
        assert_eq!(
            counts.in_process,
            VerbCounts {
                get: 2,
                ..VerbCounts::default()
            }
        );
        assert_eq!(
            counts.https,
            VerbCounts {
                patch: 1,
                other: 1,
                ..VerbCounts::default()
            }
        );
        assert_eq!(counts.https.total(), 2);
    }

    #[test]
    fn since_subtracts_an_earlier_snapshot() {
        let counter = RequestCounter::default();
        counter.record(WayIn::Https, Some(Verb::List));
        let before = counter.snapshot();
        counter.record(WayIn::Https, Some(Verb::List));
        counter.record(WayIn::Https, Some(Verb::Watch));
        let delta = counter.snapshot().since(&before);
        assert_eq!(delta.https.list, 1);
        assert_eq!(delta.https.watch, 1);
        assert_eq!(delta.https.total(), 2);
        assert_eq!(delta.in_process.total(), 0);
    }

    #[test]
    fn display_lists_the_verbs_used() {
        let counts = VerbCounts {
            get: 12,
            patch: 3,
            ..VerbCounts::default()
        };
        assert_eq!(counts.to_string(), "get 12, patch 3");
        assert_eq!(VerbCounts::default().to_string(), "none");
    }
}
