//! Whether an environment may start (the operator's caps on environments, in total and per
//! requester) and what its namespace may use (the ResourceQuota and LimitRange built from the
//! operator's defaults and the environment's `spec.quota`, within the operator's maximums).
//! Pure: the controller applies what this decides.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use upstart_api::labels::{ENVIRONMENT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use upstart_api::v1alpha1::{QuotaSpec, UpstartEnvironment};

use crate::constants::reasons;

/// The name of the ResourceQuota and of the LimitRange in each environment namespace.
pub const QUOTA_NAME: &str = "upstart-environment";

/// The operator's caps, defaults and maximums (its flags).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// At most this many environments exist (started) at once.
    pub max_environments: Option<usize>,
    /// At most this many per requester (the requester annotation; none: counted as one
    /// requester, `unknown`).
    pub max_per_requester: Option<usize>,
    /// The ResourceQuota `hard` of an environment that sets none.
    pub default_quota: BTreeMap<String, String>,
    /// The most an environment may ask for; a resource named here and set nowhere else gets
    /// this value.
    pub max_quota: BTreeMap<String, String>,
    /// The LimitRange's `defaultRequest` for containers.
    pub default_container_requests: BTreeMap<String, String>,
    /// The LimitRange's `default` limits for containers.
    pub default_container_limits: BTreeMap<String, String>,
}

impl Limits {
    /// Whether any cap is set (else no other environment needs to be looked at).
    pub fn caps(&self) -> bool {
        self.max_environments.is_some() || self.max_per_requester.is_some()
    }
}

/// Another environment, as the caps count it.
#[derive(Clone, Debug, PartialEq)]
pub struct Other {
    pub name: String,
    pub requester: Option<String>,
    pub created: Timestamp,
    /// Started: it has a phase other than Refused.
    pub started: bool,
    /// Refused because its quota is above the maximum: it holds no place in the queue.
    pub refused_for_quota: bool,
}

/// The environment asking to start.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate<'a> {
    pub name: &'a str,
    pub requester: Option<&'a str>,
    pub created: Timestamp,
}

/// Why an environment may not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// Whether `candidate` (not started yet) may start beside `others`. An environment counts
/// when it started, or when it is older and not refused for its quota: so of two created at
/// once only the older starts, and refused ones start in creation order as room is made. One
/// being deleted counts until it is gone (its namespace still uses the cluster).
pub fn admit(candidate: &Candidate<'_>, others: &[Other], limits: &Limits) -> Result<(), Refusal> {
    let counted: Vec<&Other> = others
        .iter()
        .filter(|o| o.name != candidate.name)
        .filter(|o| {
            o.started
                || (!o.refused_for_quota
                    && (o.created, o.name.as_str()) < (candidate.created, candidate.name))
        })
        .collect();
    if let Some(max) = limits.max_environments
        && counted.len() >= max
    {
        return Err(Refusal {
            reason: reasons::CAP_REACHED,
            message: format!(
                "{} environments exist or wait before this one and the operator allows {max} \
                 (--max-environments); it starts by itself once one is deleted (upstart env \
                 delete NAME)",
                counted.len()
            ),
        });
    }
    if let Some(max) = limits.max_per_requester {
        let mine = counted
            .iter()
            .filter(|o| o.requester.as_deref() == candidate.requester)
            .count();
        if mine >= max {
            let who = candidate.requester.unwrap_or("unknown");
            return Err(Refusal {
                reason: reasons::CAP_REACHED,
                message: format!(
                    "requester {who} has {mine} environments and the operator allows {max} per \
                     requester (--max-environments-per-requester); it starts by itself once \
                     one of them is deleted"
                ),
            });
        }
    }
    Ok(())
}

/// What an environment's namespace gets: the quota's `hard`, the containers' default requests
/// and limits. Empty maps: that object is not created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    pub hard: BTreeMap<String, String>,
    pub container_requests: BTreeMap<String, String>,
    pub container_limits: BTreeMap<String, String>,
}

/// The quota for `spec` (over the defaults), refused when a value is above its maximum or
/// is not a quantity.
pub fn quota(spec: Option<&QuotaSpec>, limits: &Limits) -> Result<Quota, Refusal> {
    let spec = spec.cloned().unwrap_or_default();
    let mut hard = limits.default_quota.clone();
    hard.extend(spec.hard.clone());
    for (resource, max) in &limits.max_quota {
        hard.entry(resource.clone()).or_insert_with(|| max.clone());
    }
    let mut problems = Vec::new();
    for (field, values) in [
        ("hard", &hard),
        ("containerRequests", &spec.container_requests),
        ("containerLimits", &spec.container_limits),
    ] {
        for (resource, value) in values {
            let Some(asked) = parse_quantity(value) else {
                problems.push(format!(
                    "spec.quota.{field}.{resource} {value:?} is not a quantity (e.g. 500m, 2, \
                     8Gi)"
                ));
                continue;
            };
            // A container's default cannot be above what the whole namespace may use.
            let key = match field {
                "containerRequests" => format!("requests.{resource}"),
                "containerLimits" => format!("limits.{resource}"),
                _ => resource.clone(),
            };
            let max = limits.max_quota.get(&key).or_else(|| {
                (field == "containerRequests").then(|| limits.max_quota.get(resource))?
            });
            if let Some(max) = max
                && parse_quantity(max).is_some_and(|max| asked > max)
            {
                problems.push(format!(
                    "spec.quota.{field}.{resource} {value} is above the operator's maximum \
                     {max} (--max-quota {key}={max}); ask for at most {max}"
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Refusal {
            reason: reasons::QUOTA_ABOVE_MAXIMUM,
            message: problems.join("; "),
        });
    }
    let mut container_requests = limits.default_container_requests.clone();
    container_requests.extend(spec.container_requests);
    let mut container_limits = limits.default_container_limits.clone();
    container_limits.extend(spec.container_limits);
    Ok(Quota {
        hard,
        container_requests,
        container_limits,
    })
}

/// A Kubernetes quantity (`500m`, `2`, `1.5Gi`, `1e3`) as a number, for comparison only.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let e: i32 = exponent.strip_prefix(['e', 'E'])?.parse().ok()?;
            10f64.powi(e)
        }
    };
    (number >= 0.0).then_some(number * factor)
}

/// Parses a flag's `RESOURCE=QUANTITY[,RESOURCE=QUANTITY]...`.
pub fn parse_resource_list(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut list = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((resource, value)) = pair.split_once('=') else {
            return Err(format!(
                "{pair:?} is not RESOURCE=QUANTITY (e.g. requests.cpu=4,limits.memory=8Gi)"
            ));
        };
        if parse_quantity(value).is_none() {
            return Err(format!(
                "{value:?} (for {resource}) is not a quantity (e.g. 500m, 2, 8Gi)"
            ));
        }
        list.insert(resource.trim().to_owned(), value.trim().to_owned());
    }
    Ok(list)
}

/// The ResourceQuota and LimitRange of `quota` for the environment's namespace (`None` for
/// an object with nothing to say), owned by the environment.
pub fn build(
    env: &UpstartEnvironment,
    namespace: &str,
    quota: &Quota,
) -> (Option<ResourceQuota>, Option<LimitRange>) {
    let metadata = ObjectMeta {
        name: Some(QUOTA_NAME.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([
            (
                ENVIRONMENT_LABEL.to_owned(),
                env.meta().name.clone().unwrap_or_default(),
            ),
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
        ])),
        owner_references: env.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    };
    let quantities = |values: &BTreeMap<String, String>| {
        (!values.is_empty()).then(|| {
            values
                .iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect::<BTreeMap<_, _>>()
        })
    };
    let resource_quota = quantities(&quota.hard).map(|hard| ResourceQuota {
        metadata: metadata.clone(),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    });
    let default_request = quantities(&quota.container_requests);
    let default = quantities(&quota.container_limits);
    let limit_range = (default_request.is_some() || default.is_some()).then(|| LimitRange {
        metadata,
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".to_owned(),
                default,
                default_request,
                ..LimitRangeItem::default()
            }],
        }),
    });
    (resource_quota, limit_range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn other(name: &str, requester: &str, created: i64, started: bool) -> Other {
        Other {
            name: name.into(),
            requester: Some(requester.into()),
            created: at(created),
            started,
            refused_for_quota: false,
        }
    }

    fn candidate(name: &'static str, requester: &'static str, created: i64) -> Candidate<'static> {
        Candidate {
            name,
            requester: Some(requester),
            created: at(created),
        }
    }

    fn capped(total: Option<usize>, per_requester: Option<usize>) -> Limits {
        Limits {
            max_environments: total,
            max_per_requester: per_requester,
            ..Limits::default()
        }
    }

    #[test]
    fn environment_over_the_total_cap_is_refused_and_says_how_it_starts() {
        let others = [other("a", "ann", 1, true), other("b", "bob", 2, true)];
        let refusal =
            admit(&candidate("c", "cid", 3), &others, &capped(Some(2), None)).unwrap_err();
        assert_eq!(refusal.reason, "CapReached");
        assert!(
            refusal.message.contains("--max-environments"),
            "{}",
            refusal.message
        );
        assert!(
            refusal.message.contains("starts by itself"),
            "{}",
            refusal.message
        );
        assert_eq!(
            admit(
                &candidate("c", "cid", 3),
                &others[..1],
                &capped(Some(2), None)
            ),
            Ok(())
        );
    }

    #[test]
    fn of_two_created_at_once_only_the_older_starts() {
        let limits = capped(Some(1), None);
        let a = other("a", "ann", 1, false);
        let b = other("b", "bob", 1, false);
        // Same second: by name.
        assert_eq!(
            admit(&candidate("a", "ann", 1), std::slice::from_ref(&b), &limits),
            Ok(())
        );
        assert!(admit(&candidate("b", "bob", 1), std::slice::from_ref(&a), &limits).is_err());
    }

    #[test]
    fn per_requester_cap_counts_only_that_requesters_environments() {
        let others = [other("a", "ann", 1, true), other("b", "bob", 2, true)];
        let limits = capped(None, Some(1));
        let refusal = admit(&candidate("c", "ann", 3), &others, &limits).unwrap_err();
        assert!(
            refusal.message.contains("requester ann has 1"),
            "{}",
            refusal.message
        );
        assert_eq!(admit(&candidate("c", "cid", 3), &others, &limits), Ok(()));
    }

    #[test]
    fn environment_refused_for_its_quota_holds_no_place() {
        let mut refused = other("a", "ann", 1, false);
        refused.refused_for_quota = true;
        assert_eq!(
            admit(
                &candidate("b", "bob", 2),
                &[refused],
                &capped(Some(1), None)
            ),
            Ok(())
        );
    }

    #[test]
    fn quota_is_the_defaults_under_the_spec_and_maximums_fill_what_is_unset() {
        let limits = Limits {
            default_quota: [
                ("pods".into(), "20".into()),
                ("requests.cpu".into(), "2".into()),
            ]
            .into(),
            max_quota: [
                ("requests.cpu".into(), "8".into()),
                ("limits.memory".into(), "16Gi".into()),
            ]
            .into(),
            default_container_requests: [("cpu".into(), "100m".into())].into(),
            ..Limits::default()
        };
        let spec = QuotaSpec {
            hard: [("requests.cpu".into(), "4".into())].into(),
            container_limits: [("memory".into(), "512Mi".into())].into(),
            ..QuotaSpec::default()
        };
        let quota = quota(Some(&spec), &limits).unwrap();
        assert_eq!(
            quota.hard,
            BTreeMap::from([
                ("limits.memory".into(), "16Gi".into()),
                ("pods".into(), "20".into()),
                ("requests.cpu".into(), "4".into()),
            ])
        );
        assert_eq!(
            quota.container_requests,
            BTreeMap::from([("cpu".into(), "100m".into())])
        );
        assert_eq!(
            quota.container_limits,
            BTreeMap::from([("memory".into(), "512Mi".into())])
        );
    }

    #[test]
    fn quota_above_the_maximum_is_refused_naming_the_value_and_the_maximum() {
        let limits = Limits {
            max_quota: [
                ("requests.cpu".into(), "8".into()),
                ("limits.memory".into(), "1Gi".into()),
            ]
            .into(),
            ..Limits::default()
        };
        let spec = QuotaSpec {
            hard: [("requests.cpu".into(), "8500m".into())].into(),
            container_limits: [("memory".into(), "2Gi".into())].into(),
            ..QuotaSpec::default()
        };
        let refusal = quota(Some(&spec), &limits).unwrap_err();
        assert_eq!(refusal.reason, "QuotaAboveMaximum");
        assert!(
            refusal
                .message
                .contains("spec.quota.hard.requests.cpu 8500m is above the operator's maximum 8"),
            "{}",
            refusal.message
        );
        assert!(
            refusal
                .message
                .contains("spec.quota.containerLimits.memory 2Gi"),
            "{}",
            refusal.message
        );
        let bad = QuotaSpec {
            hard: [("pods".into(), "lots".into())].into(),
            ..QuotaSpec::default()
        };
        assert!(
            quota(Some(&bad), &Limits::default())
                .unwrap_err()
                .message
                .contains("\"lots\" is not a quantity")
        );
    }

    #[test]
    fn quantities_compare_across_suffixes() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1Gi"), Some(1024f64.powi(3)));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert!(parse_quantity("1G").unwrap() < parse_quantity("1Gi").unwrap());
        assert_eq!(parse_quantity("cpu"), None);
        assert_eq!(parse_quantity("1Xi"), None);
    }

    #[test]
    fn flag_lists_are_read_and_a_bad_quantity_is_named() {
        assert_eq!(
            parse_resource_list("requests.cpu=4, limits.memory=8Gi").unwrap(),
            BTreeMap::from([
                ("limits.memory".into(), "8Gi".into()),
                ("requests.cpu".into(), "4".into())
            ])
        );
        assert!(
            parse_resource_list("cpu")
                .unwrap_err()
                .contains("RESOURCE=QUANTITY")
        );
        assert!(
            parse_resource_list("cpu=many")
                .unwrap_err()
                .contains("\"many\"")
        );
    }

    #[test]
    fn quota_objects_are_owned_by_the_environment_and_left_out_when_empty() {
        let mut env = UpstartEnvironment::new("pr-1", Default::default());
        env.metadata.uid = Some("u1".into());
        let quota = Quota {
            hard: [("pods".into(), "10".into())].into(),
            ..Quota::default()
        };
        let (resource_quota, limit_range) = build(&env, "pr-1", &quota);
        let resource_quota = resource_quota.unwrap();
        assert_eq!(resource_quota.metadata.namespace.as_deref(), Some("pr-1"));
        assert_eq!(
            resource_quota.metadata.owner_references.unwrap()[0].uid,
            "u1"
        );
        assert_eq!(
            resource_quota.spec.unwrap().hard.unwrap()["pods"],
            Quantity("10".into())
        );
        assert_eq!(limit_range, None);
    }
}
