//! Which copy of a catalog template a service of an environment runs (safe catalog changes):
//! the catalog's current revision when it is valid, else the last good copy; under
//! `templateUpdates: pinned`, the copy it has. The copy is kept on the service itself (its
//! template annotations), so it survives operator restarts and needs no store of its own. Pure.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use upstart_api::conditions::ConditionUpdate;
use upstart_api::labels::{
    TEMPLATE_ANNOTATION, TEMPLATE_REVISION_ANNOTATION, TEMPLATE_SPEC_ANNOTATION,
};
use upstart_api::v1alpha1::{TemplateRevision, TemplateUpdates, UpstartServiceSpec};
use upstart_release_engine::digest::json_digest;

use crate::children::Problem;
use crate::constants::{TEMPLATES_UP_TO_DATE, reasons};

/// How many validation errors of a template a message quotes before it says "and N more".
const MAX_ERRORS: usize = 3;

/// The revision of a template: the `sha256:` digest of its spec in canonical JSON.
pub fn revision(spec: &UpstartServiceSpec) -> String {
    json_digest(&serde_json::to_value(spec).unwrap_or_default())
}

/// A template's spec as one service copied it.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateCopy {
    /// The catalog template's name.
    pub template: String,
    /// [`revision`] of `spec`.
    pub revision: String,
    /// The template's spec, before the environment's overrides.
    pub spec: UpstartServiceSpec,
}

impl TemplateCopy {
    /// A copy of `spec`, the template `template`.
    pub fn of(template: &str, spec: &UpstartServiceSpec) -> TemplateCopy {
        TemplateCopy {
            template: template.to_owned(),
            revision: revision(spec),
            spec: spec.clone(),
        }
    }

    /// The copy recorded on a live service, if it has a readable one. The revision is
    /// recomputed from the spec, so an edited annotation cannot claim another revision.
    pub fn recorded(meta: &ObjectMeta) -> Option<TemplateCopy> {
        let annotations = meta.annotations.as_ref()?;
        let template = annotations.get(TEMPLATE_ANNOTATION)?;
        let spec: UpstartServiceSpec =
            serde_json::from_str(annotations.get(TEMPLATE_SPEC_ANNOTATION)?).ok()?;
        Some(TemplateCopy::of(template, &spec))
    }

    /// The annotations recording this copy on the service built from it.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (TEMPLATE_ANNOTATION.to_owned(), self.template.clone()),
            (
                TEMPLATE_REVISION_ANNOTATION.to_owned(),
                self.revision.clone(),
            ),
            (
                TEMPLATE_SPEC_ANNOTATION.to_owned(),
                serde_json::to_string(&self.spec).unwrap_or_default(),
            ),
        ])
    }
}

/// How the copy a service runs stands against the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateState {
    /// The catalog's current revision.
    Current,
    /// An earlier revision, kept because the environment is pinned.
    Pinned,
    /// Pinned, and the template is gone from the catalog.
    PinnedGone,
    /// The last good copy, kept because the catalog's revision fails validation: `errors`.
    Invalid { errors: String },
}

/// The template copy one service runs, for status and conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateUse {
    pub service: String,
    pub template: String,
    /// The revision the service runs.
    pub revision: String,
    /// The catalog's revision, when the template is there.
    pub catalog_revision: Option<String>,
    pub state: TemplateState,
}

impl TemplateUse {
    /// The entry of `status.templates`.
    pub fn status(&self) -> TemplateRevision {
        TemplateRevision {
            service: self.service.clone(),
            template: self.template.clone(),
            revision: self.revision.clone(),
            catalog_revision: self
                .catalog_revision
                .clone()
                .filter(|r| *r != self.revision),
        }
    }
}

/// The copy of template `template` that service `service` runs. `catalog` is the template as
/// the catalog has it now (None: not there), `recorded` the copy the live service carries (of
/// any template), `validate` the catalog validation (its errors; empty when valid). A copy is
/// validated only when it would replace the recorded one.
pub fn choose(
    service: &str,
    template: &str,
    mode: TemplateUpdates,
    catalog: Option<&UpstartServiceSpec>,
    recorded: Option<&TemplateCopy>,
    validate: &dyn Fn(&str, &UpstartServiceSpec) -> Vec<String>,
) -> Result<(TemplateCopy, TemplateUse), Problem> {
    let recorded = recorded.filter(|r| r.template == template);
    let catalog_revision = catalog.map(revision);
    let with = |copy: &TemplateCopy, state: TemplateState| {
        let used = TemplateUse {
            service: service.to_owned(),
            template: template.to_owned(),
            revision: copy.revision.clone(),
            catalog_revision: catalog_revision.clone(),
            state,
        };
        Ok((copy.clone(), used))
    };
    if let Some(copy) = recorded {
        if catalog_revision.as_deref() == Some(copy.revision.as_str()) {
            return with(copy, TemplateState::Current);
        }
        if mode == TemplateUpdates::Pinned {
            let state = if catalog.is_some() {
                TemplateState::Pinned
            } else {
                TemplateState::PinnedGone
            };
            return with(copy, state);
        }
    }
    let Some(spec) = catalog else {
        return Err(Problem {
            service: service.to_owned(),
            reason: reasons::TEMPLATE_NOT_FOUND,
            message: format!(
                "service {service}: template {template} does not exist in the catalog"
            ),
        });
    };
    let errors = validate(template, spec);
    if errors.is_empty() {
        return with(&TemplateCopy::of(template, spec), TemplateState::Current);
    }
    let errors = quote_errors(&errors);
    match recorded {
        Some(copy) => with(copy, TemplateState::Invalid { errors }),
        None => Err(Problem {
            service: service.to_owned(),
            reason: reasons::TEMPLATE_INVALID,
            message: format!(
                "service {service}: template {template} (revision {}) is invalid and the \
                 environment has no earlier copy of it to run: {errors}; fix the template in \
                 the catalog (upstart validate shows the same errors)",
                catalog_revision.unwrap_or_default()
            ),
        }),
    }
}

fn quote_errors(errors: &[String]) -> String {
    let mut quoted = errors[..errors.len().min(MAX_ERRORS)].join("; ");
    if errors.len() > MAX_ERRORS {
        quoted.push_str(&format!(" and {} more", errors.len() - MAX_ERRORS));
    }
    quoted
}

/// The `TemplatesUpToDate` condition: True when every service runs its template's current
/// catalog revision; else False, naming each service that does not and why (an invalid
/// revision first: that one needs someone to act).
pub fn condition(uses: &[TemplateUse]) -> ConditionUpdate<'static> {
    let invalid: Vec<String> = uses
        .iter()
        .filter_map(|u| match &u.state {
            TemplateState::Invalid { errors } => Some(format!(
                "template {} revision {} is invalid, service {} keeps running revision {}: \
                 {errors}",
                u.template,
                u.catalog_revision.as_deref().unwrap_or_default(),
                u.service,
                u.revision
            )),
            _ => None,
        })
        .collect();
    if !invalid.is_empty() {
        return ConditionUpdate::new(
            TEMPLATES_UP_TO_DATE,
            false,
            reasons::TEMPLATE_INVALID,
            invalid.join("; "),
        );
    }
    let pinned: Vec<String> = uses
        .iter()
        .filter_map(|u| match u.state {
            TemplateState::Pinned => Some(format!(
                "service {} runs template {} revision {} (pinned; the catalog has {})",
                u.service,
                u.template,
                u.revision,
                u.catalog_revision.as_deref().unwrap_or_default()
            )),
            TemplateState::PinnedGone => Some(format!(
                "service {} runs template {} revision {} (pinned; the template is no longer \
                 in the catalog)",
                u.service, u.template, u.revision
            )),
            _ => None,
        })
        .collect();
    if !pinned.is_empty() {
        return ConditionUpdate::new(
            TEMPLATES_UP_TO_DATE,
            false,
            reasons::TEMPLATE_PINNED,
            pinned.join("; "),
        );
    }
    let message = if uses.is_empty() {
        "no service is copied from a catalog template"
    } else {
        "every service runs its catalog template's current revision"
    };
    ConditionUpdate::new(
        TEMPLATES_UP_TO_DATE,
        true,
        reasons::TEMPLATES_CURRENT,
        message,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(tag: &str) -> UpstartServiceSpec {
        serde_json::from_value(json!({"helmReleases": {
            "app": {"chart": "repo/app", "values": {"tag": tag}}
        }}))
        .expect("valid spec")
    }

    fn valid(_: &str, _: &UpstartServiceSpec) -> Vec<String> {
        Vec::new()
    }

    fn invalid(_: &str, _: &UpstartServiceSpec) -> Vec<String> {
        vec!["dependency cycle: svc/a -> svc/b -> svc/a".to_owned()]
    }

    fn choose_with(
        mode: TemplateUpdates,
        catalog: Option<&UpstartServiceSpec>,
        recorded: Option<&TemplateCopy>,
        validate: &dyn Fn(&str, &UpstartServiceSpec) -> Vec<String>,
    ) -> Result<(TemplateCopy, TemplateUse), Problem> {
        choose("web", "web-template", mode, catalog, recorded, validate)
    }

    #[test]
    fn the_revision_is_a_sha256_digest_that_follows_the_spec() {
        assert!(revision(&spec("1")).starts_with("sha256:"));
        assert_eq!(revision(&spec("1")), revision(&spec("1")));
        assert_ne!(revision(&spec("1")), revision(&spec("2")));
    }

    #[test]
    fn a_copy_recorded_in_annotations_reads_back_with_its_revision() {
        let copy = TemplateCopy::of("web-template", &spec("1"));
        let meta = ObjectMeta {
            annotations: Some(copy.annotations()),
            ..ObjectMeta::default()
        };
        assert_eq!(TemplateCopy::recorded(&meta), Some(copy));
        assert_eq!(TemplateCopy::recorded(&ObjectMeta::default()), None);
    }

    #[test]
    fn an_edited_recorded_spec_gets_the_revision_of_what_it_holds() {
        let mut annotations = TemplateCopy::of("web-template", &spec("1")).annotations();
        annotations.insert(
            TEMPLATE_SPEC_ANNOTATION.to_owned(),
            serde_json::to_string(&spec("2")).expect("json"),
        );
        let meta = ObjectMeta {
            annotations: Some(annotations),
            ..ObjectMeta::default()
        };
        let copy = TemplateCopy::recorded(&meta).expect("readable");
        assert_eq!(copy.revision, revision(&spec("2")));
    }

    #[test]
    fn following_a_valid_new_revision_copies_it() {
        let old = TemplateCopy::of("web-template", &spec("1"));
        let (copy, used) = choose_with(
            TemplateUpdates::Follow,
            Some(&spec("2")),
            Some(&old),
            &valid,
        )
        .expect("copied");
        assert_eq!(copy.spec, spec("2"));
        assert_eq!(used.state, TemplateState::Current);
        assert_eq!(used.status().catalog_revision, None);
    }

    #[test]
    fn an_invalid_new_revision_is_never_copied_and_the_last_good_copy_is_kept() {
        let old = TemplateCopy::of("web-template", &spec("1"));
        let (copy, used) = choose_with(
            TemplateUpdates::Follow,
            Some(&spec("2")),
            Some(&old),
            &invalid,
        )
        .expect("kept");
        assert_eq!(copy, old);
        assert!(
            matches!(&used.state, TemplateState::Invalid { errors } if errors.contains("dependency cycle")),
            "{used:?}"
        );
        assert_eq!(
            used.status().catalog_revision,
            Some(revision(&spec("2"))),
            "status shows the revision not taken"
        );
        let c = condition(&[used]);
        assert!(!c.status);
        assert_eq!(c.reason, reasons::TEMPLATE_INVALID);
        assert!(c.message.contains("template web-template"), "{}", c.message);
        assert!(c.message.contains("dependency cycle"), "{}", c.message);
    }

    #[test]
    fn an_invalid_template_without_an_earlier_copy_is_a_problem_naming_it_and_its_errors() {
        let problem = choose_with(TemplateUpdates::Follow, Some(&spec("2")), None, &invalid)
            .expect_err("nothing to run");
        assert_eq!(problem.reason, reasons::TEMPLATE_INVALID);
        assert!(
            problem.message.contains("service web"),
            "{}",
            problem.message
        );
        assert!(
            problem.message.contains("template web-template"),
            "{}",
            problem.message
        );
        assert!(
            problem.message.contains("dependency cycle"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn a_copy_of_another_template_is_not_kept() {
        let other = TemplateCopy::of("other", &spec("1"));
        let problem = choose_with(
            TemplateUpdates::Pinned,
            Some(&spec("2")),
            Some(&other),
            &invalid,
        )
        .expect_err("the other template's copy does not count");
        assert_eq!(problem.reason, reasons::TEMPLATE_INVALID);
        let (copy, _) = choose_with(
            TemplateUpdates::Pinned,
            Some(&spec("2")),
            Some(&other),
            &valid,
        )
        .expect("copied");
        assert_eq!(copy.template, "web-template");
    }

    #[test]
    fn pinned_keeps_its_copy_when_the_catalog_changes_or_drops_the_template() {
        let old = TemplateCopy::of("web-template", &spec("1"));
        let (copy, used) = choose_with(
            TemplateUpdates::Pinned,
            Some(&spec("2")),
            Some(&old),
            &|_, _| panic!("a pinned copy is not validated again"),
        )
        .expect("kept");
        assert_eq!(copy, old);
        assert_eq!(used.state, TemplateState::Pinned);
        assert_eq!(condition(&[used]).reason, reasons::TEMPLATE_PINNED);
        let (copy, used) =
            choose_with(TemplateUpdates::Pinned, None, Some(&old), &valid).expect("kept");
        assert_eq!(copy, old);
        assert_eq!(used.state, TemplateState::PinnedGone);
        assert!(
            condition(&[used])
                .message
                .contains("no longer in the catalog")
        );
    }

    #[test]
    fn pinned_without_a_copy_takes_the_catalogs_valid_revision() {
        let (copy, used) =
            choose_with(TemplateUpdates::Pinned, Some(&spec("1")), None, &valid).expect("copied");
        assert_eq!(copy.spec, spec("1"));
        assert_eq!(used.state, TemplateState::Current);
    }

    #[test]
    fn a_template_missing_from_the_catalog_is_a_problem_when_following() {
        let old = TemplateCopy::of("web-template", &spec("1"));
        let problem = choose_with(TemplateUpdates::Follow, None, Some(&old), &valid)
            .expect_err("follow needs the template");
        assert_eq!(problem.reason, reasons::TEMPLATE_NOT_FOUND);
        assert!(problem.message.contains("web-template"));
    }

    #[test]
    fn templates_are_up_to_date_when_every_service_runs_the_catalogs_revision() {
        let (_, used) =
            choose_with(TemplateUpdates::Follow, Some(&spec("1")), None, &valid).expect("copied");
        let c = condition(&[used]);
        assert!(c.status);
        assert_eq!(c.reason, reasons::TEMPLATES_CURRENT);
        assert!(condition(&[]).status);
    }

    #[test]
    fn long_error_lists_are_cut_after_three() {
        let many = |_: &str, _: &UpstartServiceSpec| -> Vec<String> {
            (1..=5).map(|i| format!("error {i}")).collect()
        };
        let problem = choose_with(TemplateUpdates::Follow, Some(&spec("1")), None, &many)
            .expect_err("invalid");
        assert!(
            problem.message.contains("error 3 and 2 more"),
            "{}",
            problem.message
        );
        assert!(!problem.message.contains("error 4"));
    }
}
