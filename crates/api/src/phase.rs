//! What the three phase enums have in common: every phase listed, and each one's name as status
//! writes it, so metrics and Events read phases one way.

/// A status phase of one of the Upstart kinds.
pub trait Phase: Copy + Eq + 'static {
    /// Every phase, in life order (metrics report all of them, zeros included).
    const ALL: &'static [Self];

    /// The phase as written in status.
    fn as_str(self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::Phase;
    use crate::v1alpha1::{EnvironmentPhase, HelmReleasePhase, ServicePhase};

    fn names_are_what_status_serializes<P: Phase + serde::Serialize>() {
        for phase in P::ALL {
            assert_eq!(
                serde_json::to_value(phase).unwrap(),
                serde_json::json!(phase.as_str())
            );
        }
    }

    #[test]
    fn phase_names_are_what_status_serializes() {
        names_are_what_status_serializes::<HelmReleasePhase>();
        names_are_what_status_serializes::<ServicePhase>();
        names_are_what_status_serializes::<EnvironmentPhase>();
        assert_eq!(HelmReleasePhase::ALL.len(), 8);
        assert_eq!(ServicePhase::ALL.len(), 8);
        assert_eq!(EnvironmentPhase::ALL.len(), 8);
    }
}
