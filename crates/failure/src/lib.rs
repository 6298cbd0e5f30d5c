//! The one vocabulary of failures every crate shares: what a failure asks of whoever meets it
//! ([`Class`]: retry, wait, or change the spec) and its bounded metric label
//! ([`MetricLabel`]). Each crate's error enum implements both, once, and callers ask these
//! questions the same way everywhere (`error.needs_spec_change()` means the same in the DAG
//! crate, the chart sources, the release engine and the operators).
//!
//! No dependencies, so the pure crates can use it without pulling in Kubernetes.

/// What a failure asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// May succeed later with no change: a network failure, a 5xx or 429 answer, a conflict, a
    /// CRD not yet established, a chart not yet published. Retried with backoff.
    Transient,
    /// Not a failure: something needed does not exist yet (a dependency, an output key). Watch
    /// events wake the object when it appears; no backoff, no failure metric.
    Waiting,
    /// Only a change of the spec (or of the chart or configuration it names) can fix this: the
    /// object says so in a condition and is not retried until it changes.
    NeedsSpecChange,
}

/// A failure that knows its [`Class`].
pub trait Classify {
    /// What this failure asks for.
    fn class(&self) -> Class;

    /// Retrying later (with backoff) may succeed without any change.
    fn is_transient(&self) -> bool {
        self.class() == Class::Transient
    }

    /// Something needed does not exist yet: wait for it.
    fn is_wait(&self) -> bool {
        self.class() == Class::Waiting
    }

    /// Only a change of the spec can fix this: stop retrying until it changes.
    fn needs_spec_change(&self) -> bool {
        self.class() == Class::NeedsSpecChange
    }
}

/// A failure's short, bounded name, used as the `reason` label of
/// `upstart_reconcile_errors_total`.
///
/// One constant string per variant (as in kube-rs/controller-rs), so metric labels stay
/// bounded: never put an object name, a message or anything derived from input into it.
pub trait MetricLabel {
    /// A constant, lowercase `snake_case` name of the failure (for example `"apply_failed"`).
    fn metric_label(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Class);

    impl Classify for Fixed {
        fn class(&self) -> Class {
            self.0
        }
    }

    #[test]
    fn each_class_answers_exactly_one_question_yes() {
        for (class, answers) in [
            (Class::Transient, [true, false, false]),
            (Class::Waiting, [false, true, false]),
            (Class::NeedsSpecChange, [false, false, true]),
        ] {
            let failure = Fixed(class);
            assert_eq!(
                [
                    failure.is_transient(),
                    failure.is_wait(),
                    failure.needs_spec_change()
                ],
                answers,
                "{class:?}"
            );
        }
    }
}
