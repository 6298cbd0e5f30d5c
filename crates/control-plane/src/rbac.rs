//! Role-based access control as the API server enforces it, opt-in
//! ([`crate::ControlPlane::enable_rbac`]): who may do what, from the Roles, ClusterRoles and
//! their bindings in the store.
//!
//! What it follows, from kube-apiserver's RBAC authorizer and RBAC storage:
//! - the request's attributes as the apiserver's `RequestInfo` reads them from the path (verb,
//!   API group, resource, subresource, namespace, name; a namespace's own namespace is its name;
//!   a list or watch by `metadata.name` field selector is asked about that name), or a
//!   non-resource path;
//! - rules with `*` verbs, groups and resources, `*/subresource`, resourceNames,
//!   nonResourceURLs with a trailing `*`; a ClusterRole's `aggregationRule` gathers the rules of
//!   the ClusterRoles its selectors match (computed when asked, not written into the role);
//! - `system:masters` is allowed everything without looking at roles, as on a real cluster;
//! - a server-side apply that creates its object also needs `create`;
//! - the escalation check (writing a Role or ClusterRole with rules the requester does not
//!   hold needs `escalate` on it; an `aggregationRule` needs every right) and the bind check
//!   (binding a role whose rules the requester does not hold needs `bind` on that role);
//! - impersonation (`Impersonate-User`, `-Group`, `-Uid`, `-Extra-*`), each checked with the
//!   `impersonate` verb on users, serviceaccounts, groups, uids and userextras;
//! - SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectAccessReview and
//!   SelfSubjectRulesReview answered from the same rules;
//! - the apiserver's 403 messages, word for word.
//!
//! Enabling it also creates the apiserver's bootstrap roles that clients rely on (the
//! `cluster-admin` role of `system:masters`, `system:discovery`, `system:basic-user`,
//! `system:public-info-viewer`, and the aggregated `admin`, `edit` and `view`, with a shorter
//! list of resources than a real cluster's).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Request, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::Shared;
use crate::auth::UserInfo;
use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::patching::PatchKind;
use crate::registry::ResKey;
use crate::store::{ListQuery, Store, WriteOpts};

/// The RBAC API group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The group whose members bypass authorization.
const MASTERS: &str = "system:masters";
const AUTHENTICATED: &str = "system:authenticated";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// Whether RBAC is enforced on requests.
#[derive(Debug, Default)]
pub struct Rbac {
    enabled: AtomicBool,
}

impl Rbac {
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }
}

/// Enforces RBAC from now on, creating the bootstrap roles that do not exist yet.
pub fn enable(shared: &Shared) -> ApiResult<()> {
    {
        let mut store = shared.lock();
        for (plural, object) in bootstrap_policy() {
            let Some(t) = store.registry.lookup(RBAC_GROUP, "v1", plural).cloned() else {
                return Err(ApiError::internal(format!("{plural} are not served")));
            };
            if store.get(&t, "", meta::name(&object)).is_ok() {
                continue;
            }
            let opts = WriteOpts {
                field_manager: "kube-apiserver".to_string(),
                ..WriteOpts::default()
            };
            store.create(&t, "", object, &opts)?;
        }
    }
    shared.rbac.enabled.store(true, Ordering::SeqCst);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Request attributes

/// What a request asks to do, as the apiserver's `authorizer.Attributes` name it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// False for non-resource paths (`/version`, `/apis`, `/healthz`, ...).
    pub resource_request: bool,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub path: String,
}

impl Attributes {
    /// `resource` or `resource/subresource`, as rules name it.
    fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The attributes of a request (kube-apiserver's `RequestInfoFactory`).
pub fn request_attributes(method: &str, path: &str, query: Option<&str>) -> Attributes {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let non_resource = || Attributes {
        verb: method.to_ascii_lowercase(),
        path: path.to_string(),
        ..Attributes::default()
    };
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => return non_resource(),
    };
    let params: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let mut rest = rest;
    let mut watch_path = false;
    if rest.first() == Some(&"watch") {
        watch_path = true;
        rest = &rest[1..];
    }
    let mut attributes = Attributes {
        resource_request: true,
        group: group.to_string(),
        path: path.to_string(),
        ..Attributes::default()
    };
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        attributes.namespace = rest[1].to_string();
        // `namespaces/NS/RESOURCE...` unless it is the namespace's own subresource.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    attributes.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
    attributes.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
    attributes.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
    let named = !attributes.name.is_empty();
    attributes.verb = match method {
        "GET" | "HEAD" if watch_path || param("watch").is_some_and(query_true) => "watch",
        "GET" | "HEAD" if named => "get",
        "GET" | "HEAD" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if named => "delete",
        "DELETE" => "deletecollection",
        other => {
            return Attributes {
                verb: other.to_ascii_lowercase(),
                ..attributes
            };
        }
    }
    .to_string();
    // A list or watch of one object by name is asked about that name.
    if matches!(attributes.verb.as_str(), "list" | "watch")
        && !named
        && let Some(selector) = param("fieldSelector")
    {
        for term in selector.split(',') {
            if let Some(name) = term
                .strip_prefix("metadata.name==")
                .or_else(|| term.strip_prefix("metadata.name="))
            {
                attributes.name = name.to_string();
            }
        }
    }
    attributes
}

fn query_true(value: &str) -> bool {
    !(value == "0" || value.eq_ignore_ascii_case("false"))
}

// ---------------------------------------------------------------------------------------------
// Rules and policy

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|x| x == item)
}

impl Rule {
    /// Whether this rule allows the request (the RBAC authorizer's `RuleAllows`).
    pub fn allows(&self, a: &Attributes) -> bool {
        if !(has(&self.verbs, "*") || has(&self.verbs, &a.verb)) {
            return false;
        }
        if !a.resource_request {
            return self.non_resource_urls.iter().any(|url| {
                url == "*"
                    || url == &a.path
                    || url
                        .strip_suffix('*')
                        .is_some_and(|prefix| a.path.starts_with(prefix))
            });
        }
        let group = has(&self.api_groups, "*") || has(&self.api_groups, &a.group);
        let combined = a.combined_resource();
        let resource = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(&a.subresource))
        });
        let name = self.resource_names.is_empty() || has(&self.resource_names, &a.name);
        group && resource && name
    }

    /// The rule as the apiserver prints it in escalation errors (`CompactString`).
    fn compact(&self) -> String {
        let quoted = |list: &[String]| {
            let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", items.join(" "))
        };
        let mut parts = Vec::new();
        if !self.api_groups.is_empty() {
            parts.push(format!("APIGroups:{}", quoted(&self.api_groups)));
        }
        if !self.resources.is_empty() {
            parts.push(format!("Resources:{}", quoted(&self.resources)));
        }
        if !self.non_resource_urls.is_empty() {
            parts.push(format!(
                "NonResourceURLs:{}",
                quoted(&self.non_resource_urls)
            ));
        }
        if !self.resource_names.is_empty() {
            parts.push(format!("ResourceNames:{}", quoted(&self.resource_names)));
        }
        if !self.verbs.is_empty() {
            parts.push(format!("Verbs:{}", quoted(&self.verbs)));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

fn rules_of(object: &Value) -> Vec<Rule> {
    object
        .get("rules")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default()
}

/// A subject of a binding.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

impl Subject {
    /// Whether `user` is this subject; a ServiceAccount without a namespace is of the
    /// binding's namespace.
    fn applies_to(&self, user: &UserInfo, binding_namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.username == self.name,
            "Group" => has(&user.groups, &self.name),
            "ServiceAccount" => {
                let namespace = if self.namespace.is_empty() {
                    binding_namespace
                } else {
                    &self.namespace
                };
                user.username == format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{}", self.name)
            }
            _ => false,
        }
    }

    fn describe(&self, binding_namespace: &str) -> String {
        if self.kind == "ServiceAccount" {
            let namespace = if self.namespace.is_empty() {
                binding_namespace
            } else {
                &self.namespace
            };
            format!("{} {:?}", self.kind, format!("{}/{namespace}", self.name))
        } else {
            format!("{} {:?}", self.kind, self.name)
        }
    }
}

#[derive(Debug, Clone)]
struct Binding {
    name: String,
    /// Empty for a ClusterRoleBinding.
    namespace: String,
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
}

impl Binding {
    fn from_object(object: &Value) -> Binding {
        let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
        Binding {
            name: meta::name(object).to_string(),
            namespace: meta::namespace(object).to_string(),
            role_kind: text(&object["roleRef"], "kind"),
            role_name: text(&object["roleRef"], "name"),
            subjects: object["subjects"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|s| Subject {
                            kind: text(s, "kind"),
                            name: text(s, "name"),
                            namespace: text(s, "namespace"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn describe(&self, subject: &Subject) -> String {
        let (kind, name) = if self.namespace.is_empty() {
            ("ClusterRoleBinding", self.name.clone())
        } else {
            ("RoleBinding", format!("{}/{}", self.name, self.namespace))
        };
        format!(
            "{kind} {name:?} of {} {:?} to {}",
            self.role_kind,
            self.role_name,
            subject.describe(&self.namespace)
        )
    }
}

#[derive(Debug, Clone)]
struct ClusterRole {
    rules: Vec<Rule>,
    labels: Value,
    /// `aggregationRule.clusterRoleSelectors`, when the role has one.
    selectors: Option<Vec<Value>>,
}

/// The RBAC objects of the store at one moment.
#[derive(Debug, Default)]
pub struct Policy {
    roles: HashMap<(String, String), Vec<Rule>>,
    cluster_roles: BTreeMap<String, ClusterRole>,
    role_bindings: Vec<Binding>,
    cluster_role_bindings: Vec<Binding>,
}

/// Rules that apply to a user, each with the binding that grants it, and the errors met on the
/// way (bindings of roles that do not exist).
#[derive(Debug, Default)]
struct Grants {
    rules: Vec<(String, Rule)>,
    errors: Vec<String>,
}

impl Policy {
    /// Reads the Roles, ClusterRoles and bindings of `store`.
    pub fn load(store: &Store) -> Policy {
        let all = |plural: &str| -> Vec<std::sync::Arc<Value>> {
            store
                .registry
                .lookup(RBAC_GROUP, "v1", plural)
                .and_then(|t| store.list(t, &ListQuery::default()).ok())
                .map(|result| result.items)
                .unwrap_or_default()
        };
        let mut policy = Policy::default();
        for role in all("roles") {
            policy.roles.insert(
                (
                    meta::namespace(&role).to_string(),
                    meta::name(&role).to_string(),
                ),
                rules_of(&role),
            );
        }
        for role in all("clusterroles") {
            policy.cluster_roles.insert(
                meta::name(&role).to_string(),
                ClusterRole {
                    rules: rules_of(&role),
                    labels: role["metadata"]["labels"].clone(),
                    selectors: role["aggregationRule"]["clusterRoleSelectors"]
                        .as_array()
                        .cloned(),
                },
            );
        }
        policy.role_bindings = all("rolebindings")
            .iter()
            .map(|b| Binding::from_object(b))
            .collect();
        policy.cluster_role_bindings = all("clusterrolebindings")
            .iter()
            .map(|b| Binding::from_object(b))
            .collect();
        policy
    }

    /// The rules of ClusterRole `name`: its own and, with an aggregationRule, those of every
    /// ClusterRole its selectors match (as the aggregation controller would write them).
    fn cluster_role_rules(&self, name: &str) -> Option<Vec<Rule>> {
        let mut seen = HashSet::new();
        self.aggregate(name, &mut seen)
    }

    fn aggregate(&self, name: &str, seen: &mut HashSet<String>) -> Option<Vec<Rule>> {
        let role = self.cluster_roles.get(name)?;
        if !seen.insert(name.to_string()) {
            return Some(Vec::new());
        }
        let mut rules = role.rules.clone();
        if let Some(selectors) = &role.selectors {
            for (other, candidate) in &self.cluster_roles {
                if other != name
                    && selectors
                        .iter()
                        .any(|s| selector_matches(s, &candidate.labels))
                {
                    rules.extend(self.aggregate(other, seen).unwrap_or_default());
                }
            }
        }
        Some(rules)
    }

    /// The rules a role reference grants in `namespace` (the binding's, empty for a
    /// ClusterRoleBinding), or the lister's not-found error.
    fn role_ref_rules(&self, kind: &str, name: &str, namespace: &str) -> Result<Vec<Rule>, String> {
        match kind {
            "ClusterRole" => self
                .cluster_role_rules(name)
                .ok_or_else(|| format!("clusterrole.{RBAC_GROUP} {name:?} not found")),
            "Role" => self
                .roles
                .get(&(namespace.to_string(), name.to_string()))
                .cloned()
                .ok_or_else(|| format!("role.{RBAC_GROUP} {name:?} not found")),
            other => Err(format!("unsupported role reference kind: {other:?}")),
        }
    }

    /// Everything `user` is granted in `namespace` (cluster-wide grants only when it is empty).
    fn grants(&self, user: &UserInfo, namespace: &str) -> Grants {
        let mut grants = Grants::default();
        let bindings = self.cluster_role_bindings.iter().chain(
            self.role_bindings
                .iter()
                .filter(|b| !namespace.is_empty() && b.namespace == namespace),
        );
        for binding in bindings {
            let Some(subject) = binding
                .subjects
                .iter()
                .find(|s| s.applies_to(user, &binding.namespace))
            else {
                continue;
            };
            match self.role_ref_rules(&binding.role_kind, &binding.role_name, &binding.namespace) {
                Ok(rules) => {
                    let source = binding.describe(subject);
                    grants
                        .rules
                        .extend(rules.into_iter().map(|r| (source.clone(), r)));
                }
                Err(e) => grants.errors.push(e),
            }
        }
        grants
    }

    /// The RBAC authorizer's decision on `attributes` for `user`, with its reason.
    pub fn authorize(&self, user: &UserInfo, attributes: &Attributes) -> Decision {
        if has(&user.groups, MASTERS) {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let grants = self.grants(user, &attributes.namespace);
        if let Some((source, _)) = grants.rules.iter().find(|(_, r)| r.allows(attributes)) {
            return Decision {
                allowed: true,
                reason: format!("RBAC: allowed by {source}"),
            };
        }
        Decision {
            allowed: false,
            reason: if grants.errors.is_empty() {
                String::new()
            } else {
                format!("RBAC: {}", aggregate_errors(&grants.errors))
            },
        }
    }
}

/// How Go's `utilerrors.NewAggregate` prints several errors.
fn aggregate_errors(errors: &[String]) -> String {
    if errors.len() == 1 {
        errors[0].clone()
    } else {
        format!("[{}]", errors.join(", "))
    }
}

/// Whether a metav1 LabelSelector (`matchLabels`, `matchExpressions`) matches `labels`.
fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    let match_labels = selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    let expressions = selector["matchExpressions"].as_array().is_none_or(|list| {
        list.iter().all(|e| {
            let value = label(e["key"].as_str().unwrap_or_default());
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e["operator"].as_str().unwrap_or_default() {
                "In" => value.is_some_and(|v| values.contains(&v)),
                "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
    });
    // An empty selector matches nothing in an aggregationRule.
    let empty = selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.is_empty())
        && selector["matchExpressions"]
            .as_array()
            .is_none_or(Vec::is_empty);
    !empty && match_labels && expressions
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// `RBAC: allowed by ...`, the resolution errors of a denial, or empty.
    pub reason: String,
}

// ---------------------------------------------------------------------------------------------
// Covering: the escalation and bind checks

/// One verb on one group, resource and name (or one non-resource URL): rules broken down as
/// the apiserver's `Covers` does.
fn breakdown(rule: &Rule) -> Vec<Rule> {
    let mut atoms = Vec::new();
    for verb in &rule.verbs {
        for group in &rule.api_groups {
            for resource in &rule.resources {
                if rule.resource_names.is_empty() {
                    atoms.push(Rule {
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        verbs: vec![verb.clone()],
                        ..Rule::default()
                    });
                }
                for name in &rule.resource_names {
                    atoms.push(Rule {
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        resource_names: vec![name.clone()],
                        verbs: vec![verb.clone()],
                        ..Rule::default()
                    });
                }
            }
        }
        for url in &rule.non_resource_urls {
            atoms.push(Rule {
                non_resource_urls: vec![url.clone()],
                verbs: vec![verb.clone()],
                ..Rule::default()
            });
        }
    }
    atoms
}

fn has_all(owner: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(owner, w))
}

/// Whether `owner` grants everything `atom` does (the apiserver's `ruleCovers`).
fn rule_covers(owner: &Rule, atom: &Rule) -> bool {
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &atom.verbs);
    let groups = has(&owner.api_groups, "*") || has_all(&owner.api_groups, &atom.api_groups);
    let resources = has(&owner.resources, "*")
        || atom.resources.iter().all(|r| {
            has(&owner.resources, r)
                || r.split_once('/')
                    .is_some_and(|(_, sub)| has(&owner.resources, &format!("*/{sub}")))
        });
    let urls = atom.non_resource_urls.iter().all(|url| {
        owner.non_resource_urls.iter().any(|o| {
            o == "*" || o == url || o.strip_suffix('*').is_some_and(|p| url.starts_with(p))
        })
    });
    let names = owner.resource_names.is_empty()
        || (!atom.resource_names.is_empty()
            && has_all(&owner.resource_names, &atom.resource_names));
    verbs && groups && resources && urls && names
}

/// The parts of `requested` that `owner` does not grant, compacted (one rule per group,
/// resource and name with their verbs) and sorted, as escalation errors list them.
pub fn uncovered(owner: &[Rule], requested: &[Rule]) -> Vec<Rule> {
    // Keyed by the atom without its verb.
    let mut missing: BTreeMap<Rule, BTreeSet<String>> = BTreeMap::new();
    for atom in requested.iter().flat_map(breakdown) {
        if owner.iter().any(|o| rule_covers(o, &atom)) {
            continue;
        }
        let verbs = atom.verbs.clone();
        let key = Rule {
            verbs: Vec::new(),
            ..atom
        };
        missing.entry(key).or_default().extend(verbs);
    }
    let mut rules: Vec<Rule> = missing
        .into_iter()
        .map(|(rule, verbs)| Rule {
            verbs: verbs.into_iter().collect(),
            ..rule
        })
        .collect();
    rules.sort_by_key(Rule::compact);
    rules
}

fn forbidden(group: &str, resource: &str, name: &str, message: String) -> ApiError {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let text = if resource.is_empty() {
        format!("forbidden: {message}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {message}")
    } else {
        format!("{qualified} {name:?} is forbidden: {message}")
    };
    let mut details = json!({ "kind": resource });
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    ApiError::new(403, "Forbidden", text).with_details(details)
}

/// The apiserver's 403 for a request its authorizer did not allow.
pub fn denied(user: &UserInfo, a: &Attributes, reason: &str) -> ApiError {
    let message = if a.resource_request {
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", a.namespace)
        };
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} {scope}",
            user.username,
            a.verb,
            a.combined_resource(),
            a.group
        )
    } else {
        format!(
            "User {:?} cannot {} path {:?}",
            user.username, a.verb, a.path
        )
    };
    let message = if reason.is_empty() {
        message
    } else {
        format!("{message}: {reason}")
    };
    if a.resource_request {
        forbidden(&a.group, &a.resource, &a.name, message)
    } else {
        forbidden("", "", "", message)
    }
}

fn escalation_error(user: &UserInfo, missing: &[Rule], errors: &[String]) -> String {
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    let rules: Vec<String> = missing.iter().map(Rule::compact).collect();
    let resolution = if errors.is_empty() {
        String::new()
    } else {
        format!("; resolution errors: {}", aggregate_errors(errors))
    };
    format!(
        "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}{resolution}",
        user.username,
        groups.join(" "),
        rules.join("\n")
    )
}

// ---------------------------------------------------------------------------------------------
// The request pipeline's hook

/// Who sent `req`: the HTTPS endpoint put the authenticated user in its extensions; requests
/// in process come from the admin.
fn requester<B>(req: &Request<B>) -> UserInfo {
    req.extensions()
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(UserInfo::admin)
}

/// Applies impersonation and authorizes `req`, with RBAC enabled: afterwards its
/// [`UserInfo`] extension is the user it acts as. The 403 or 400 of the apiserver otherwise.
pub fn authorize<B>(shared: &Shared, req: &mut Request<B>) -> ApiResult<()> {
    if !shared.rbac.enabled() || req.extensions().get::<UserInfo>().is_none() {
        return Ok(());
    }
    let policy = Policy::load(&shared.lock());
    let user = impersonate(&policy, requester(req), req.headers())?;
    let attributes = request_attributes(req.method().as_str(), req.uri().path(), req.uri().query());
    let decision = policy.authorize(&user, &attributes);
    if !decision.allowed {
        return Err(denied(&user, &attributes, &decision.reason));
    }
    // A server-side apply that creates the object is also a create.
    let apply = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| PatchKind::from_content_type(ct) == Some(PatchKind::Apply));
    if attributes.verb == "patch" && apply && attributes.subresource.is_empty() {
        let exists = stored(shared, &attributes).is_some();
        if !exists {
            let create = Attributes {
                verb: "create".to_string(),
                ..attributes.clone()
            };
            let decision = policy.authorize(&user, &create);
            if !decision.allowed {
                return Err(denied(&user, &create, &decision.reason));
            }
        }
    }
    req.extensions_mut().insert(user);
    Ok(())
}

/// The stored object a request names, if any.
fn stored(shared: &Shared, a: &Attributes) -> Option<std::sync::Arc<Value>> {
    let store = shared.lock();
    let t = store.registry.get(&ResKey {
        group: a.group.clone(),
        plural: a.resource.clone(),
    })?;
    store.get(t, &a.namespace, &a.name).ok()
}

/// The user `requester` acts as after the `Impersonate-*` headers, each checked with the
/// `impersonate` verb (kube-apiserver's impersonation filter).
fn impersonate(
    policy: &Policy,
    requester: UserInfo,
    headers: &http::HeaderMap,
) -> ApiResult<UserInfo> {
    let text = |v: &HeaderValue| v.to_str().unwrap_or_default().to_string();
    let user = headers.get("impersonate-user").map(text);
    let groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .map(text)
        .collect();
    let uid = headers.get("impersonate-uid").map(text);
    let mut extras: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            name.as_str()
                .strip_prefix("impersonate-extra-")
                .map(|key| (key.to_string(), text(value)))
        })
        .collect();
    extras.sort();
    let Some(username) = user else {
        if groups.is_empty() && uid.is_none() && extras.is_empty() {
            return Ok(requester);
        }
        return Err(ApiError::bad_request(
            "requested impersonation of groups, a uid or extra fields without impersonating a user",
        ));
    };
    let mut checks: Vec<Attributes> = Vec::new();
    let impersonate =
        |group: &str, resource: &str, sub: &str, namespace: &str, name: &str| Attributes {
            verb: "impersonate".to_string(),
            resource_request: true,
            group: group.to_string(),
            resource: resource.to_string(),
            subresource: sub.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            path: String::new(),
        };
    let account = username
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'));
    match account {
        Some((namespace, name)) => {
            checks.push(impersonate("", "serviceaccounts", "", namespace, name));
        }
        None => checks.push(impersonate("", "users", "", "", &username)),
    }
    for group in &groups {
        checks.push(impersonate("", "groups", "", "", group));
    }
    if let Some(uid) = &uid {
        checks.push(impersonate("authentication.k8s.io", "uids", "", "", uid));
    }
    for (key, value) in &extras {
        checks.push(impersonate(
            "authentication.k8s.io",
            "userextras",
            key,
            "",
            value,
        ));
    }
    for check in &checks {
        let decision = policy.authorize(&requester, check);
        if !decision.allowed {
            return Err(denied(&requester, check, &decision.reason));
        }
    }
    let mut impersonated_groups = groups;
    if let Some((namespace, _)) = account
        && impersonated_groups.is_empty()
    {
        impersonated_groups.push("system:serviceaccounts".to_string());
        impersonated_groups.push(format!("system:serviceaccounts:{namespace}"));
    }
    if username != "system:anonymous" && !has(&impersonated_groups, AUTHENTICATED) {
        impersonated_groups.push(AUTHENTICATED.to_string());
    }
    Ok(UserInfo {
        username,
        uid: uid.unwrap_or_default(),
        groups: impersonated_groups,
    })
}

/// The escalation and bind checks of RBAC storage, for a create, update or patch of a Role,
/// ClusterRole, RoleBinding or ClusterRoleBinding (`body` already JSON).
pub fn check_rbac_write(shared: &Shared, req: &Request<Bytes>) -> ApiResult<()> {
    if !shared.rbac.enabled() {
        return Ok(());
    }
    let user = requester(req);
    if has(&user.groups, MASTERS) {
        return Ok(());
    }
    let a = request_attributes(req.method().as_str(), req.uri().path(), req.uri().query());
    let kind = match a.resource.as_str() {
        "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings" => a.resource.as_str(),
        _ => return Ok(()),
    };
    if a.group != RBAC_GROUP
        || !a.subresource.is_empty()
        || !matches!(a.verb.as_str(), "create" | "update" | "patch")
    {
        return Ok(());
    }
    let current = if a.verb == "create" {
        None
    } else {
        stored(shared, &a)
    };
    let body = || {
        serde_json::from_slice::<Value>(req.body())
            .or_else(|_| serde_yaml_ng::from_slice(req.body()))
            .ok()
    };
    let candidate = match a.verb.as_str() {
        "patch" => {
            let ct = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            match (PatchKind::from_content_type(ct), &current) {
                (Some(PatchKind::Apply), current) => {
                    // The applied configuration states the rules, roleRef and aggregationRule
                    // it owns in full (atomic fields).
                    let mut merged = current.as_deref().cloned().unwrap_or_else(|| json!({}));
                    if let Some(applied) = body() {
                        for key in ["rules", "roleRef", "aggregationRule"] {
                            if let Some(v) = applied.get(key) {
                                merged[key] = v.clone();
                            }
                        }
                    }
                    merged
                }
                (Some(kind), Some(current)) => {
                    let store = shared.lock();
                    let Some(t) = store.registry.get(&ResKey {
                        group: RBAC_GROUP.to_string(),
                        plural: a.resource.clone(),
                    }) else {
                        return Ok(());
                    };
                    // A patch that does not apply is refused by the store with its own error.
                    match crate::patching::apply_patch(kind, current, req.body(), t) {
                        Ok(patched) => patched,
                        Err(_) => return Ok(()),
                    }
                }
                _ => return Ok(()),
            }
        }
        _ => match body() {
            Some(body) => body,
            None => return Ok(()),
        },
    };
    let name = if a.name.is_empty() {
        meta::name(&candidate).to_string()
    } else {
        a.name.clone()
    };
    let policy = Policy::load(&shared.lock());
    if kind == "roles" || kind == "clusterroles" {
        let escalate = Attributes {
            verb: "escalate".to_string(),
            name: name.clone(),
            ..a.clone()
        };
        if policy.authorize(&user, &escalate).allowed {
            return Ok(());
        }
        let rules = rules_of(&candidate);
        let aggregation = candidate
            .get("aggregationRule")
            .is_some_and(|r| !r.is_null());
        let unchanged = current.as_ref().is_some_and(|c| {
            rules_of(c) == rules && c.get("aggregationRule") == candidate.get("aggregationRule")
        });
        if unchanged {
            return Ok(());
        }
        let grants = policy.grants(&user, &a.namespace);
        let owned: Vec<Rule> = grants.rules.into_iter().map(|(_, r)| r).collect();
        let missing = uncovered(&owned, &rules);
        if !missing.is_empty() {
            return Err(forbidden(
                RBAC_GROUP,
                kind,
                &name,
                escalation_error(&user, &missing, &grants.errors),
            ));
        }
        if aggregation && !uncovered(&owned, &full_authority()).is_empty() {
            return Err(forbidden(
                RBAC_GROUP,
                kind,
                &name,
                "must have cluster-admin privileges to use the aggregationRule".to_string(),
            ));
        }
        return Ok(());
    }
    // A binding.
    let binding = Binding::from_object(&candidate);
    let unchanged = current
        .as_ref()
        .is_some_and(|c| c.get("roleRef") == candidate.get("roleRef"));
    if unchanged {
        return Ok(());
    }
    let role_resource = if binding.role_kind == "Role" {
        "roles"
    } else {
        "clusterroles"
    };
    let bind = Attributes {
        verb: "bind".to_string(),
        resource_request: true,
        group: RBAC_GROUP.to_string(),
        resource: role_resource.to_string(),
        namespace: a.namespace.clone(),
        name: binding.role_name.clone(),
        ..Attributes::default()
    };
    if policy.authorize(&user, &bind).allowed {
        return Ok(());
    }
    let rules = policy
        .role_ref_rules(&binding.role_kind, &binding.role_name, &a.namespace)
        .map_err(|_| {
            ApiError::not_found(crate::error::Subject {
                group: RBAC_GROUP,
                plural: role_resource,
                name: &binding.role_name,
            })
        })?;
    let grants = policy.grants(&user, &a.namespace);
    let owned: Vec<Rule> = grants.rules.into_iter().map(|(_, r)| r).collect();
    let missing = uncovered(&owned, &rules);
    if missing.is_empty() {
        return Ok(());
    }
    Err(forbidden(
        RBAC_GROUP,
        kind,
        &name,
        escalation_error(&user, &missing, &grants.errors),
    ))
}

/// Every right: what an aggregationRule needs.
fn full_authority() -> Vec<Rule> {
    vec![
        Rule {
            api_groups: vec!["*".into()],
            resources: vec!["*".into()],
            verbs: vec!["*".into()],
            ..Rule::default()
        },
        Rule {
            non_resource_urls: vec!["*".into()],
            verbs: vec!["*".into()],
            ..Rule::default()
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Access reviews

/// The `status` of an access review `review` of `kind` created by `requester` at `path`.
/// Without RBAC, every access is allowed (the answers of a control plane without
/// authorization).
pub fn review_status(
    shared: &Shared,
    kind: &str,
    review: &Value,
    requester: &UserInfo,
    path: &str,
) -> ApiResult<Value> {
    let enabled = shared.rbac.enabled();
    if kind == "SelfSubjectRulesReview" {
        if !enabled {
            return Ok(json!({
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": false,
            }));
        }
        let namespace = review["spec"]["namespace"].as_str().unwrap_or_default();
        let policy = Policy::load(&shared.lock());
        return Ok(rules_review(&policy, requester, namespace));
    }
    if !enabled {
        return Ok(json!({
            "allowed": true,
            "reason": "the local control plane does no authorization: every request is allowed",
        }));
    }
    let spec = &review["spec"];
    let attributes = review_attributes(kind, spec, path)?;
    let user = match kind {
        "SelfSubjectAccessReview" => requester.clone(),
        _ => {
            let text_list = |key: &str| -> Vec<String> {
                spec[key]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let user = UserInfo {
                username: spec["user"].as_str().unwrap_or_default().to_string(),
                uid: spec["uid"].as_str().unwrap_or_default().to_string(),
                groups: text_list("groups"),
            };
            if user.username.is_empty() && user.groups.is_empty() {
                return Err(ApiError::invalid(
                    kind,
                    "authorization.k8s.io",
                    "",
                    vec![Cause::invalid(
                        "spec.user",
                        &json!(""),
                        "at least one of user or group must be specified",
                    )],
                ));
            }
            user
        }
    };
    let decision = Policy::load(&shared.lock()).authorize(&user, &attributes);
    let mut status = json!({ "allowed": decision.allowed });
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    Ok(status)
}

/// The attributes an access review asks about.
fn review_attributes(kind: &str, spec: &Value, path: &str) -> ApiResult<Attributes> {
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
    let resource = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    let invalid = |detail: &str| {
        ApiError::invalid(
            kind,
            "authorization.k8s.io",
            "",
            vec![Cause::required("spec.resourceAttributes", detail)],
        )
    };
    match (resource, non_resource) {
        (Some(r), None) => {
            let attributes = Attributes {
                verb: text(r, "verb"),
                resource_request: true,
                group: text(r, "group"),
                resource: text(r, "resource"),
                subresource: text(r, "subresource"),
                namespace: text(r, "namespace"),
                name: text(r, "name"),
                path: String::new(),
            };
            if kind == "LocalSubjectAccessReview" {
                let in_path = request_attributes("POST", path, None).namespace;
                if attributes.namespace != in_path {
                    return Err(ApiError::bad_request(format!(
                        "spec.resourceAttributes.namespace must match namespace: {in_path}"
                    )));
                }
            }
            Ok(attributes)
        }
        (None, Some(n)) => {
            if kind == "LocalSubjectAccessReview" {
                return Err(invalid(
                    "disallowed on this kind of request: nonResourceAttributes",
                ));
            }
            Ok(Attributes {
                verb: text(n, "verb"),
                path: text(n, "path"),
                ..Attributes::default()
            })
        }
        (Some(_), Some(_)) => Err(invalid(
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        (None, None) => Err(invalid(
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

/// A SelfSubjectRulesReview's status: the rules `user` has in `namespace`.
fn rules_review(policy: &Policy, user: &UserInfo, namespace: &str) -> Value {
    let grants = policy.grants(user, namespace);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    let mut seen = HashSet::new();
    for (_, rule) in grants.rules {
        if !seen.insert(rule.clone()) {
            continue;
        }
        if !rule.resources.is_empty() {
            let mut r = json!({"verbs": rule.verbs, "apiGroups": rule.api_groups, "resources": rule.resources});
            if !rule.resource_names.is_empty() {
                r["resourceNames"] = json!(rule.resource_names);
            }
            resource_rules.push(r);
        }
        if !rule.non_resource_urls.is_empty() {
            non_resource_rules
                .push(json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !grants.errors.is_empty(),
    });
    if !grants.errors.is_empty() {
        status["evaluationError"] = json!(aggregate_errors(&grants.errors));
    }
    status
}

// ---------------------------------------------------------------------------------------------
// Bootstrap policy

/// The apiserver's bootstrap roles and bindings that clients rely on (abridged resource lists
/// for the aggregated `view`, `edit` and `admin`).
fn bootstrap_policy() -> Vec<(&'static str, Value)> {
    let bootstrap = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    let annotations = json!({"rbac.authorization.kubernetes.io/autoupdate": "true"});
    let role = |name: &str, labels: Value, rules: Value| {
        let mut all = bootstrap.clone();
        if let (Some(all), Some(extra)) = (all.as_object_mut(), labels.as_object()) {
            all.extend(extra.clone());
        }
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": all, "annotations": annotations},
            "rules": rules,
        })
    };
    let aggregated = |name: &str, to: &str, labels: Value| {
        let mut r = role(name, labels, json!([]));
        r["aggregationRule"] = json!({"clusterRoleSelectors": [
            {"matchLabels": {format!("rbac.authorization.k8s.io/aggregate-to-{to}"): "true"}}
        ]});
        r
    };
    let binding = |name: &str, role: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({"kind": "Group", "apiGroup": RBAC_GROUP, "name": g}))
            .collect();
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": bootstrap, "annotations": annotations},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": subjects,
        })
    };
    let read = json!(["get", "list", "watch"]);
    let write = json!(["create", "delete", "deletecollection", "patch", "update"]);
    let label = |to: &[&str]| {
        let map: serde_json::Map<String, Value> = to
            .iter()
            .map(|t| {
                (
                    format!("rbac.authorization.k8s.io/aggregate-to-{t}"),
                    json!("true"),
                )
            })
            .collect();
        Value::Object(map)
    };
    let workloads = json!([
        {"apiGroups": [""], "resources": ["configmaps", "endpoints", "persistentvolumeclaims", "pods", "replicationcontrollers", "serviceaccounts", "services", "events", "limitranges", "resourcequotas", "pods/log", "pods/status", "namespaces", "namespaces/status"], "verbs": read},
        {"apiGroups": ["apps"], "resources": ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status"], "verbs": read},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers", "horizontalpodautoscalers/status"], "verbs": read},
        {"apiGroups": ["batch"], "resources": ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], "verbs": read},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets", "poddisruptionbudgets/status"], "verbs": read},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingresses/status", "networkpolicies"], "verbs": read},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
    ]);
    let edits = json!([
        {"apiGroups": [""], "resources": ["secrets"], "verbs": read},
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
        {"apiGroups": [""], "resources": ["configmaps", "events", "persistentvolumeclaims", "pods", "replicationcontrollers", "replicationcontrollers/scale", "secrets", "serviceaccounts", "services"], "verbs": write},
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
        {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"], "verbs": write},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": write},
        {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": write},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": write},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": write},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]},
    ]);
    let admins = json!([
        {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]},
        {"apiGroups": [RBAC_GROUP], "resources": ["rolebindings", "roles"], "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]},
    ]);
    vec![
        (
            "clusterroles",
            role(
                "cluster-admin",
                json!({}),
                json!([
                    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                    {"nonResourceURLs": ["*"], "verbs": ["*"]},
                ]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:discovery",
                json!({}),
                json!([
                    {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]},
                ]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:basic-user",
                json!({}),
                json!([
                    {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                    {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
                ]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:public-info-viewer",
                json!({}),
                json!([
                    {"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]},
                ]),
            ),
        ),
        ("clusterroles", aggregated("admin", "admin", json!({}))),
        (
            "clusterroles",
            aggregated("edit", "edit", label(&["admin"])),
        ),
        ("clusterroles", aggregated("view", "view", label(&["edit"]))),
        (
            "clusterroles",
            role("system:aggregate-to-admin", label(&["admin"]), admins),
        ),
        (
            "clusterroles",
            role("system:aggregate-to-edit", label(&["edit"]), edits),
        ),
        (
            "clusterroles",
            role("system:aggregate-to-view", label(&["view"]), workloads),
        ),
        (
            "clusterrolebindings",
            binding("cluster-admin", "cluster-admin", &[MASTERS]),
        ),
        (
            "clusterrolebindings",
            binding("system:discovery", "system:discovery", &[AUTHENTICATED]),
        ),
        (
            "clusterrolebindings",
            binding("system:basic-user", "system:basic-user", &[AUTHENTICATED]),
        ),
        (
            "clusterrolebindings",
            binding(
                "system:public-info-viewer",
                "system:public-info-viewer",
                &[AUTHENTICATED, "system:unauthenticated"],
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Rule {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Rule {
            api_groups: own(groups),
            resources: own(resources),
            verbs: own(verbs),
            ..Rule::default()
        }
    }

    #[test]
    fn the_request_path_names_verb_resource_subresource_namespace_and_name() {
        let a = request_attributes("GET", "/api/v1/namespaces/ns/pods/p/log", None);
        assert_eq!(
            (
                a.verb.as_str(),
                a.group.as_str(),
                a.resource.as_str(),
                a.subresource.as_str(),
                a.namespace.as_str(),
                a.name.as_str()
            ),
            ("get", "", "pods", "log", "ns", "p")
        );
        let a = request_attributes("GET", "/apis/apps/v1/deployments", Some("watch=true"));
        assert_eq!(
            (a.verb.as_str(), a.group.as_str(), a.namespace.as_str()),
            ("watch", "apps", "")
        );
        let a = request_attributes("DELETE", "/api/v1/namespaces/ns/secrets", None);
        assert_eq!(a.verb, "deletecollection");
        let a = request_attributes(
            "PUT",
            "/apis/apps/v1/namespaces/ns/deployments/d/status",
            None,
        );
        assert_eq!(
            (a.verb.as_str(), a.combined_resource().as_str()),
            ("update", "deployments/status")
        );
    }

    #[test]
    fn a_namespace_is_in_its_own_namespace() {
        let a = request_attributes("GET", "/api/v1/namespaces/team", None);
        assert_eq!(
            (a.resource.as_str(), a.namespace.as_str(), a.name.as_str()),
            ("namespaces", "team", "team")
        );
        let a = request_attributes("PUT", "/api/v1/namespaces/team/finalize", None);
        assert_eq!(
            (a.resource.as_str(), a.subresource.as_str(), a.name.as_str()),
            ("namespaces", "finalize", "team")
        );
    }

    #[test]
    fn discovery_paths_are_non_resource_requests() {
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/version",
            "/healthz",
        ] {
            let a = request_attributes("GET", path, None);
            assert!(!a.resource_request, "{path}");
            assert_eq!(a.verb, "get");
        }
    }

    #[test]
    fn a_list_by_name_field_selector_is_asked_about_that_name() {
        let a = request_attributes(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/ns/leases",
            Some("fieldSelector=metadata.name%3Dmine&watch=1"),
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "mine"));
    }

    #[test]
    fn rules_match_subresources_only_when_named_or_starred() {
        let get = |resource: &str, sub: &str| Attributes {
            verb: "get".into(),
            resource_request: true,
            group: "apps".into(),
            resource: resource.into(),
            subresource: sub.into(),
            ..Attributes::default()
        };
        assert!(rule(&["apps"], &["deployments"], &["get"]).allows(&get("deployments", "")));
        assert!(!rule(&["apps"], &["deployments"], &["get"]).allows(&get("deployments", "status")));
        assert!(
            rule(&["apps"], &["deployments/status"], &["get"])
                .allows(&get("deployments", "status"))
        );
        assert!(rule(&["apps"], &["*/status"], &["get"]).allows(&get("deployments", "status")));
        assert!(
            !rule(&["apps"], &["deployments/*"], &["get"]).allows(&get("deployments", "status"))
        );
        assert!(rule(&["*"], &["*"], &["*"]).allows(&get("deployments", "scale")));
        assert!(!rule(&[""], &["*"], &["*"]).allows(&get("deployments", "")));
    }

    #[test]
    fn resource_names_restrict_a_rule_to_those_objects() {
        let mut r = rule(&[""], &["secrets"], &["get", "list"]);
        r.resource_names = vec!["one".into()];
        let ask = |verb: &str, name: &str| Attributes {
            verb: verb.into(),
            resource_request: true,
            resource: "secrets".into(),
            name: name.into(),
            namespace: "ns".into(),
            ..Attributes::default()
        };
        assert!(r.allows(&ask("get", "one")));
        assert!(!r.allows(&ask("get", "two")));
        assert!(
            !r.allows(&ask("list", "")),
            "a list without a name is not of named objects"
        );
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_trailing_star() {
        let r = Rule {
            non_resource_urls: vec!["/apis/*".into(), "/version".into()],
            verbs: vec!["get".into()],
            ..Rule::default()
        };
        let ask = |path: &str| request_attributes("GET", path, None);
        assert!(r.allows(&ask("/apis/apps/v1")));
        assert!(r.allows(&ask("/version")));
        assert!(!r.allows(&ask("/version/x")));
        assert!(!r.allows(&ask("/healthz")));
    }

    #[test]
    fn a_rule_covers_another_only_when_it_grants_every_part() {
        let owner = vec![rule(&[""], &["pods", "*/status"], &["get", "list"])];
        assert!(uncovered(&owner, &[rule(&[""], &["pods"], &["get"])]).is_empty());
        assert!(uncovered(&owner, &[rule(&[""], &["pods/status"], &["get"])]).is_empty());
        let missing = uncovered(
            &owner,
            &[rule(&[""], &["pods", "secrets"], &["get", "delete"])],
        );
        let shown: Vec<String> = missing.iter().map(Rule::compact).collect();
        assert_eq!(
            shown,
            [
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["delete" "get"]}"#,
            ]
        );
        let star = vec![rule(&["*"], &["*"], &["*"])];
        assert!(uncovered(&owner, &star).len() == 1, "only * covers *");
    }

    #[test]
    fn aggregation_selectors_need_a_label_to_match() {
        let labels = json!({"rbac.authorization.k8s.io/aggregate-to-edit": "true"});
        assert!(selector_matches(
            &json!({"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}}),
            &labels
        ));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "rbac.authorization.k8s.io/aggregate-to-edit", "operator": "Exists"}]}),
            &labels
        ));
        assert!(
            !selector_matches(&json!({}), &labels),
            "an empty selector gathers nothing"
        );
    }
}
