//! Per-object settings: the global [`Options`] overridden by the object's annotations.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Options;

/// Annotation: the delay before this object becomes ready (or fails), e.g. `2s`.
pub const READY_AFTER: &str = "simulator.upstart.dev/ready-after";
/// Annotation: `"true"` makes this object fail, `"false"` makes it succeed.
pub const FAIL: &str = "simulator.upstart.dev/fail";
/// Annotation (Jobs): manifests of objects created when the Job completes.
pub const ON_COMPLETE: &str = "simulator.upstart.dev/on-complete";

/// How one object behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Delay from the first sight of a generation to ready (or failed).
    pub ready_after: Duration,
    /// Whether the object fails instead of becoming ready.
    pub fail: bool,
}

impl Settings {
    /// The settings for an object whose annotation maps are `layers`, most specific first
    /// (the object's own, then its pod template's). Values that do not parse are ignored and
    /// described in the returned warnings.
    pub fn resolve(
        options: &Options,
        layers: &[Option<&BTreeMap<String, String>>],
    ) -> (Settings, Vec<String>) {
        let mut warnings = Vec::new();
        let lookup = |key: &str| layers.iter().flatten().find_map(|m| m.get(key));
        let ready_after = match lookup(READY_AFTER) {
            Some(text) => match humantime::parse_duration(text.trim()) {
                Ok(d) => d,
                Err(e) => {
                    warnings.push(format!("ignoring {READY_AFTER}={text:?}: {e}"));
                    options.ready_after
                }
            },
            None => options.ready_after,
        };
        let fail = match lookup(FAIL).map(|v| v.trim().to_ascii_lowercase()) {
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => {
                warnings.push(format!(
                    "ignoring {FAIL}={v:?}: expected \"true\" or \"false\""
                ));
                options.fail
            }
            None => options.fail,
        };
        (Settings { ready_after, fail }, warnings)
    }

    /// Whether the delay has passed after `elapsed`.
    pub fn due(&self, elapsed: Duration) -> bool {
        elapsed >= self.ready_after
    }

    /// How long until the delay has passed, if it has not.
    pub fn remaining(&self, elapsed: Duration) -> Option<Duration> {
        self.ready_after
            .checked_sub(elapsed)
            .filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn options() -> Options {
        Options {
            ready_after: Duration::from_secs(5),
            fail: false,
        }
    }

    #[test]
    fn without_annotations_the_global_options_apply() {
        let (s, w) = Settings::resolve(&options(), &[None, None]);
        assert_eq!(s.ready_after, Duration::from_secs(5));
        assert!(!s.fail);
        assert!(w.is_empty());
    }

    #[test]
    fn object_annotation_wins_over_template_annotation() {
        let object = map(&[(READY_AFTER, "2s")]);
        let template = map(&[(READY_AFTER, "9s"), (FAIL, "true")]);
        let (s, _) = Settings::resolve(&options(), &[Some(&object), Some(&template)]);
        assert_eq!(s.ready_after, Duration::from_secs(2));
        assert!(
            s.fail,
            "fail comes from the template when the object says nothing"
        );
    }

    #[test]
    fn fail_false_overrides_a_failing_global_option() {
        let object = map(&[(FAIL, "False")]);
        let opts = Options {
            fail: true,
            ..options()
        };
        let (s, _) = Settings::resolve(&opts, &[Some(&object)]);
        assert!(!s.fail);
    }

    #[test]
    fn milliseconds_are_accepted() {
        let object = map(&[(READY_AFTER, "250ms")]);
        let (s, _) = Settings::resolve(&options(), &[Some(&object)]);
        assert_eq!(s.ready_after, Duration::from_millis(250));
    }

    #[test]
    fn unparsable_values_fall_back_with_a_warning() {
        let object = map(&[(READY_AFTER, "soon"), (FAIL, "maybe")]);
        let (s, w) = Settings::resolve(&options(), &[Some(&object)]);
        assert_eq!(s, Settings::resolve(&options(), &[]).0);
        assert_eq!(w.len(), 2, "{w:?}");
    }

    #[test]
    fn remaining_counts_down_to_none() {
        let s = Settings {
            ready_after: Duration::from_secs(2),
            fail: false,
        };
        assert_eq!(
            s.remaining(Duration::from_millis(500)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(s.remaining(Duration::from_secs(2)), None);
        assert_eq!(s.remaining(Duration::from_secs(3)), None);
        assert!(!s.due(Duration::from_millis(1999)));
        assert!(s.due(Duration::from_secs(2)));
    }
}
