//! `<< EXPR >>` expressions (SPEC §5): found in every string of a values document (keys are left
//! alone), checked against what the release declares, and replaced by their value in one pass.
//!
//! EXPR is a Handlebars expression (strict mode, no HTML escaping) over these roots: each
//! dependency alias (`ALIAS.outputs.KEY`), `environment.name`, `environment.namespace`,
//! `environment.variables.KEY`, `service.name`, `release.name`, `release.namespace`; and the
//! helper `imageDigest "REGISTRY/REPOSITORY:TAG"`, whose argument is a string literal (checked
//! offline by [`parse_image`]) and whose value is the digest-pinned reference the caller
//! resolved beforehand ([`Expressions::images`] lists what to resolve,
//! [`ExpressionContext::images`] holds the answers).
//!
//! Each distinct expression is parsed by Handlebars once per document, and its references are
//! checked before anything is evaluated, so that errors are classified by this crate (a spec
//! error, or a wait for missing output keys) rather than by parsing Handlebars' messages.
//! Evaluation then walks the parsed expression directly (references, literals and the helper
//! functions the registry uses), which is several times faster than a Handlebars render per
//! expression; the Handlebars render of the same template is kept as the reference behaviour,
//! and a property test holds the two to the same text.

mod helpers;
mod images;
mod scan;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{
    Handlebars, JsonRender, Path, PathSeg, RenderContext, RenderError, RenderErrorReason,
    Renderable, StringOutput, Template,
};
use serde_json::{Map, Value};
use upstart_api::v1alpha1::{Dependency, HelmReleaseSpec};
use upstart_failure::Classify;

use crate::{Error, Location, Outputs};
use scan::{Piece, ScanError, column, scan};

pub use images::{ImageRef, parse_image};

/// The built-in roots; a dependency may not use them as its alias.
pub const RESERVED_ROOTS: [&str; 3] = ["environment", "service", "release"];

/// What the expressions of one release can see at install time.
#[derive(Clone, Debug, Default)]
pub struct ExpressionContext {
    /// Every declared dependency by alias, with the outputs it publishes now (declare a
    /// dependency with empty outputs when it publishes nothing yet).
    pub dependencies: BTreeMap<String, Outputs>,
    /// The environment the release belongs to, if any.
    pub environment: Option<EnvironmentInfo>,
    /// The service the release belongs to, if any.
    pub service: Option<ServiceInfo>,
    /// The release itself.
    pub release: ReleaseInfo,
    /// `imageDigest` answers: each image as written in the values
    /// (`REGISTRY/REPOSITORY:TAG`) -> its digest-pinned reference (`REGISTRY/REPOSITORY@sha256:…`).
    pub images: BTreeMap<String, String>,
}

/// `environment.*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvironmentInfo {
    /// The UpstartEnvironment's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its `variables`.
    pub variables: BTreeMap<String, String>,
}

/// `service.*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The UpstartService's name.
    pub name: String,
}

/// `release.*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReleaseInfo {
    /// The HelmRelease's object name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

/// What can be checked without any value: the declared dependency aliases and which built-in
/// roots exist (for `upstart validate`, `upstart plan` and catalog validation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OfflineContext {
    /// The aliases of the declared dependencies.
    pub aliases: BTreeSet<String>,
    /// Whether `environment.*` is available (any variable name is accepted offline).
    pub environment: bool,
    /// Whether `service.*` is available.
    pub service: bool,
}

impl OfflineContext {
    /// The aliases of `dependencies`, with the given built-in roots.
    pub fn from_dependencies(
        dependencies: &[Dependency],
        environment: bool,
        service: bool,
    ) -> Self {
        OfflineContext {
            aliases: dependencies.iter().map(|d| d.alias().to_owned()).collect(),
            environment,
            service,
        }
    }
}

/// One output a release reads: `ALIAS.outputs.KEY`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutputRef {
    /// The dependency alias.
    pub alias: String,
    /// The output key.
    pub key: String,
}

/// The result of an offline check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OfflineReport {
    /// Every output the document reads (including those under `default`).
    pub consumes: BTreeSet<OutputRef>,
    /// Every problem, in document order.
    pub errors: Vec<Error>,
}

impl OfflineReport {
    /// No problem found.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Aliases that are used twice or hide a built-in root, for one release's dependencies.
pub fn check_aliases(release: &str, dependencies: &[Dependency]) -> Vec<Error> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for dependency in dependencies {
        let alias = dependency.alias();
        if RESERVED_ROOTS.contains(&alias) {
            errors.push(Error::ReservedAlias {
                release: release.to_owned(),
                alias: alias.to_owned(),
            });
        } else if !seen.insert(alias) {
            errors.push(Error::DuplicateAlias {
                release: release.to_owned(),
                alias: alias.to_owned(),
            });
        }
    }
    errors
}

/// The default cap on what the expressions of one document may write, in bytes.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 16 * 1024 * 1024;

/// The expression engine: a Handlebars registry with the SPEC §5 helpers, strict, no escaping.
/// Build it once and share it (it is `Send + Sync`).
pub struct Expressions {
    registry: Handlebars<'static>,
    max_output_bytes: usize,
}

impl Default for Expressions {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Expressions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expressions").finish_non_exhaustive()
    }
}

impl Expressions {
    /// The engine with its helpers registered.
    pub fn new() -> Self {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        // Values are not HTML: `&` in a password must stay `&`.
        registry.register_escape_fn(handlebars::no_escape);
        helpers::register(&mut registry);
        Expressions {
            registry,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
        }
    }

    /// The same engine with another cap on the bytes the expressions of one document write
    /// (the sum of every expression's output; default [`DEFAULT_MAX_OUTPUT_BYTES`]).
    pub fn with_max_output_bytes(mut self, limit: usize) -> Self {
        self.max_output_bytes = limit;
        self
    }

    /// Replaces every expression in every string of `values` (map keys are left alone).
    /// `path` names the document in errors (e.g. `spec.values`).
    ///
    /// On failure the error is the first spec error in document order if there is one (the
    /// YAML must be fixed whatever else happens), else the first evaluation failure, else the
    /// first missing output (a wait).
    pub fn substitute(
        &self,
        mut values: Value,
        path: &str,
        context: &ExpressionContext,
    ) -> Result<Value, Error> {
        self.substitute_with(&mut values, path, context, true)?;
        Ok(values)
    }

    fn substitute_with(
        &self,
        values: &mut Value,
        path: &str,
        context: &ExpressionContext,
        fast_path: bool,
    ) -> Result<(), Error> {
        let mut run = Run::new(self, Roots::of_context(context), path);
        run.fast_path = fast_path;
        run.budget = Some(OutputBudget {
            release: format!("{}/{}", context.release.namespace, context.release.name),
            written: 0,
        });
        let mut resolver = Resolver {
            context,
            handlebars_context: None,
        };
        let mut segments = Vec::new();
        walk_mut(values, &mut segments, &mut |s, segments| {
            run.resolve_string(s, segments, &mut resolver)
        });
        run.into_result()
    }

    /// The images the `imageDigest` calls of `values` name and `context` does not answer yet,
    /// to resolve before [`Expressions::substitute`]. Expressions that do not compile are
    /// skipped (substitution reports them).
    pub fn images(&self, values: &Value, context: &ExpressionContext) -> BTreeSet<String> {
        let mut run = Run::new(self, Roots::of_context(context), "");
        let mut found = BTreeSet::new();
        let mut segments = Vec::new();
        walk(values, &mut segments, &mut |s, _| {
            if !s.contains("<<") {
                return;
            }
            let _ = scan(s, |piece| {
                if let Piece::Expression { text, .. } = piece
                    && let Ok(compiled) = run.compiled(text).as_ref()
                {
                    for (reference, _) in &compiled.references {
                        if let Reference::Image(image) = reference
                            && !context.images.contains_key(image)
                        {
                            found.insert(image.clone());
                        }
                    }
                }
            });
        });
        found
    }

    /// Checks every expression of `values` against the declared dependencies, without any
    /// value, and lists the outputs it reads.
    pub fn check_offline(
        &self,
        values: &Value,
        path: &str,
        context: &OfflineContext,
    ) -> OfflineReport {
        let mut run = Run::new(self, Roots::of_offline(context), path);
        let mut report = OfflineReport::default();
        let mut segments = Vec::new();
        walk(values, &mut segments, &mut |s, segments| {
            run.check_string(s, segments, &mut report)
        });
        report
    }

    /// The offline check of one release spec (`upstart validate`, catalog validation): its
    /// dependency aliases, then the expressions of its inline `values` (path `spec.values`)
    /// against those aliases. `valuesFrom` documents are not available offline and are not
    /// checked. `release` names the release in alias errors.
    pub fn check_release_offline(
        &self,
        release: &str,
        spec: &HelmReleaseSpec,
        environment: bool,
        service: bool,
    ) -> OfflineReport {
        let context = OfflineContext::from_dependencies(&spec.dependencies, environment, service);
        let mut report = match &spec.values {
            Some(values) => self.check_offline(values, "spec.values", &context),
            None => OfflineReport::default(),
        };
        let mut errors = check_aliases(release, &spec.dependencies);
        errors.append(&mut report.errors);
        report.errors = errors;
        report
    }
}

/// One reference of an expression, after checking its shape.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reference {
    Output {
        alias: String,
        key: String,
    },
    EnvironmentName,
    EnvironmentNamespace,
    Variable(String),
    ServiceName,
    ReleaseName,
    ReleaseNamespace,
    /// `imageDigest "IMAGE"`: the image as written.
    Image(String),
}

/// A parsed and checked expression.
struct Compiled {
    /// The Handlebars template (`{{EXPR}}`): the reference behaviour.
    template: Template,
    /// The same expression as a tree this crate evaluates directly, when it has that shape.
    direct: Option<Node>,
    /// Every reference, and whether it is optional (under `default`'s first argument).
    references: Vec<(Reference, bool)>,
}

/// An expression as a tree of values and helper calls.
#[derive(Clone, Debug)]
enum Node {
    /// A literal, already rendered as Handlebars renders it.
    Literal(String),
    Reference(Reference),
    Helper(&'static str, Vec<Node>),
}

/// Why an expression is rejected, before its location is attached.
#[derive(Clone, Debug)]
enum Problem {
    Syntax(String),
    UnknownRoot { root: String, known: Vec<String> },
    Invalid(String),
}

/// The roots an expression may start with.
struct Roots<'a> {
    aliases: BTreeSet<&'a str>,
    environment: bool,
    service: bool,
}

impl<'a> Roots<'a> {
    fn of_context(context: &'a ExpressionContext) -> Self {
        Roots {
            aliases: context.dependencies.keys().map(String::as_str).collect(),
            environment: context.environment.is_some(),
            service: context.service.is_some(),
        }
    }

    fn of_offline(context: &'a OfflineContext) -> Self {
        Roots {
            aliases: context.aliases.iter().map(String::as_str).collect(),
            environment: context.environment,
            service: context.service,
        }
    }

    fn known(&self) -> Vec<String> {
        let mut known: Vec<String> = self.aliases.iter().map(|a| (*a).to_owned()).collect();
        if self.environment {
            known.push("environment".to_owned());
        }
        if self.service {
            known.push("service".to_owned());
        }
        known.push("release".to_owned());
        known
    }

    fn compile(&self, expression: &str) -> Result<Compiled, Problem> {
        let template = Template::compile(&format!("{{{{{expression}}}}}"))
            .map_err(|e| Problem::Syntax(syntax_reason(&e.reason().to_string())))?;
        let helper = match template.elements.as_slice() {
            [TemplateElement::Expression(helper)] => helper,
            _ => {
                return Err(Problem::Syntax(
                    "an expression is one path or one helper call".to_owned(),
                ));
            }
        };
        let mut references = Vec::new();
        let node = self.helper(helper, false, &mut references)?;
        // `{{(sub expr)}}` renders through Handlebars' name lookup; leave that shape to it.
        let direct = match &helper.name {
            Parameter::Subexpression(_) => None,
            _ => Some(node),
        };
        Ok(Compiled {
            template,
            direct,
            references,
        })
    }

    fn helper(
        &self,
        helper: &HelperTemplate,
        optional: bool,
        references: &mut Vec<(Reference, bool)>,
    ) -> Result<Node, Problem> {
        if !helper.hash.is_empty() {
            return Err(Problem::Invalid(
                "helpers take no named (key=value) arguments".to_owned(),
            ));
        }
        if helper.params.is_empty() {
            return self.parameter(&helper.name, optional, references);
        }
        let Parameter::Name(name) = &helper.name else {
            return Err(Problem::Syntax(
                "an expression is one path or one helper call".to_owned(),
            ));
        };
        let Some(&(helper_name, arity)) = helpers::HELPERS.iter().find(|(n, _)| n == name) else {
            return Err(Problem::Invalid(format!(
                "unknown helper {name} (helpers: {})",
                helpers::HELPERS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if helper.params.len() != arity {
            let usage = if arity == 2 {
                "two arguments"
            } else {
                "one argument"
            };
            return Err(Problem::Invalid(format!("{name} takes {usage}")));
        }
        if helper_name == helpers::IMAGE_DIGEST {
            return image_digest(&helper.params[0], optional, references);
        }
        let mut arguments = Vec::with_capacity(arity);
        for (i, parameter) in helper.params.iter().enumerate() {
            let optional = optional || (name == "default" && i == 0);
            arguments.push(self.parameter(parameter, optional, references)?);
        }
        Ok(Node::Helper(helper_name, arguments))
    }

    fn parameter(
        &self,
        parameter: &Parameter,
        optional: bool,
        references: &mut Vec<(Reference, bool)>,
    ) -> Result<Node, Problem> {
        match parameter {
            Parameter::Literal(value) => Ok(Node::Literal(value.render())),
            Parameter::Path(path) => {
                let reference = self.reference(path)?;
                references.push((reference.clone(), optional));
                Ok(Node::Reference(reference))
            }
            Parameter::Subexpression(sub) => match sub.as_element() {
                TemplateElement::Expression(helper) => self.helper(helper, optional, references),
                _ => Err(Problem::Syntax("unsupported subexpression".to_owned())),
            },
            Parameter::Name(name) => Err(Problem::Invalid(format!("{name} alone has no value"))),
            _ => Err(Problem::Syntax("unsupported parameter".to_owned())),
        }
    }

    fn reference(&self, path: &Path) -> Result<Reference, Problem> {
        let Path::Relative((segments, raw)) = path else {
            return Err(Problem::Invalid(
                "@-variables have no value here".to_owned(),
            ));
        };
        let mut names = Vec::with_capacity(segments.len());
        for segment in segments {
            match segment {
                PathSeg::Named(name) => names.push(name.as_str()),
                _ => {
                    return Err(Problem::Invalid(format!(
                        "{raw}: this, .. and @root have no value here"
                    )));
                }
            }
        }
        let Some(&root) = names.first() else {
            return Err(Problem::Invalid("an empty path has no value".to_owned()));
        };
        if self.aliases.contains(root) {
            return match names.as_slice() {
                [_, "outputs", key] => Ok(Reference::Output {
                    alias: root.to_owned(),
                    key: (*key).to_owned(),
                }),
                _ => Err(Problem::Invalid(format!(
                    "{raw}: a dependency's outputs are read as {root}.outputs.KEY"
                ))),
            };
        }
        let shape = |reference: Option<Reference>, accepted: &str| {
            reference.ok_or_else(|| Problem::Invalid(format!("{raw}: {root} has {accepted}")))
        };
        match root {
            "environment" if self.environment => shape(
                match names.as_slice() {
                    [_, "name"] => Some(Reference::EnvironmentName),
                    [_, "namespace"] => Some(Reference::EnvironmentNamespace),
                    [_, "variables", key] => Some(Reference::Variable((*key).to_owned())),
                    _ => None,
                },
                "name, namespace and variables.KEY",
            ),
            "service" if self.service => shape(
                match names.as_slice() {
                    [_, "name"] => Some(Reference::ServiceName),
                    _ => None,
                },
                "name",
            ),
            "release" => shape(
                match names.as_slice() {
                    [_, "name"] => Some(Reference::ReleaseName),
                    [_, "namespace"] => Some(Reference::ReleaseNamespace),
                    _ => None,
                },
                "name and namespace",
            ),
            _ => Err(Problem::UnknownRoot {
                root: root.to_owned(),
                known: self.known(),
            }),
        }
    }
}

/// `imageDigest "IMAGE"`: the literal is checked here; an image already pinned by digest is
/// its own answer, any other is a reference the caller resolves.
fn image_digest(
    parameter: &Parameter,
    optional: bool,
    references: &mut Vec<(Reference, bool)>,
) -> Result<Node, Problem> {
    let Parameter::Literal(Value::String(image)) = parameter else {
        return Err(Problem::Invalid(
            "imageDigest takes the image as a string literal (\"REGISTRY/REPOSITORY:TAG\")"
                .to_owned(),
        ));
    };
    let parsed =
        parse_image(image).map_err(|reason| Problem::Invalid(format!("imageDigest: {reason}")))?;
    if let Some(digest) = &parsed.digest {
        return Ok(Node::Literal(parsed.pinned(digest)));
    }
    let reference = Reference::Image(image.clone());
    references.push((reference.clone(), optional));
    Ok(Node::Reference(reference))
}

/// Handlebars' parse errors carry a pest trace of our `{{...}}` wrapper; the first line is the
/// useful part.
fn syntax_reason(reason: &str) -> String {
    let first = reason
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid expression");
    // A long list of grammar rules the parser expected says nothing useful to a YAML author.
    if first.matches(", ").count() > 3 {
        return "not a valid path or helper call".to_owned();
    }
    format!("not a valid path or helper call ({first})")
}

/// A location inside the document: a map key or a list index.
#[derive(Clone, Copy, Debug)]
enum Segment<'v> {
    Key(&'v str),
    Index(usize),
}

fn format_path(prefix: &str, segments: &[Segment<'_>]) -> String {
    let mut out = prefix.to_owned();
    for segment in segments {
        match segment {
            Segment::Key(key)
                if !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Key(key) => {
                out.push('[');
                out.push_str(&Value::String((*key).to_owned()).to_string());
                out.push(']');
            }
            Segment::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

fn walk_mut<'v>(
    value: &'v mut Value,
    segments: &mut Vec<Segment<'v>>,
    visit: &mut impl FnMut(&mut String, &[Segment<'v>]),
) {
    match value {
        Value::String(s) => visit(s, segments),
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                segments.push(Segment::Index(i));
                walk_mut(item, segments, visit);
                segments.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                segments.push(Segment::Key(key));
                walk_mut(item, segments, visit);
                segments.pop();
            }
        }
        _ => {}
    }
}

fn walk<'v>(
    value: &'v Value,
    segments: &mut Vec<Segment<'v>>,
    visit: &mut impl FnMut(&str, &[Segment<'v>]),
) {
    match value {
        Value::String(s) => visit(s, segments),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                segments.push(Segment::Index(i));
                walk(item, segments, visit);
                segments.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                segments.push(Segment::Key(key));
                walk(item, segments, visit);
                segments.pop();
            }
        }
        _ => {}
    }
}

/// Values for references at install time.
struct Resolver<'c> {
    context: &'c ExpressionContext,
    /// Built the first time Handlebars is needed.
    handlebars_context: Option<handlebars::Context>,
}

impl Resolver<'_> {
    fn lookup(&self, reference: &Reference) -> Option<&str> {
        let context = self.context;
        match reference {
            Reference::Output { alias, key } => context.dependencies.get(alias)?.get(key),
            Reference::EnvironmentName => context.environment.as_ref().map(|e| e.name.as_str()),
            Reference::EnvironmentNamespace => {
                context.environment.as_ref().map(|e| e.namespace.as_str())
            }
            Reference::Variable(key) => context
                .environment
                .as_ref()?
                .variables
                .get(key)
                .map(String::as_str),
            Reference::ServiceName => context.service.as_ref().map(|s| s.name.as_str()),
            Reference::ReleaseName => Some(&context.release.name),
            Reference::ReleaseNamespace => Some(&context.release.namespace),
            Reference::Image(image) => context.images.get(image).map(String::as_str),
        }
    }

    fn handlebars_context(&mut self) -> &handlebars::Context {
        self.handlebars_context
            .get_or_insert_with(|| handlebars::Context::from(context_json(self.context)))
    }
}

/// The context as Handlebars sees it.
fn context_json(context: &ExpressionContext) -> Value {
    let mut root = Map::new();
    for (alias, outputs) in &context.dependencies {
        let outputs: Map<String, Value> = outputs
            .iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect();
        let mut dependency = Map::new();
        dependency.insert("outputs".to_owned(), Value::Object(outputs));
        root.insert(alias.clone(), Value::Object(dependency));
    }
    if let Some(environment) = &context.environment {
        let variables: Map<String, Value> = environment
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        root.insert(
            "environment".to_owned(),
            serde_json::json!({
                "name": environment.name,
                "namespace": environment.namespace,
                "variables": variables,
            }),
        );
    }
    if let Some(service) = &context.service {
        root.insert(
            "service".to_owned(),
            serde_json::json!({ "name": service.name }),
        );
    }
    root.insert(
        "release".to_owned(),
        serde_json::json!({ "name": context.release.name, "namespace": context.release.namespace }),
    );
    // Not a path any expression may use (`@` names are refused): only the helper reads it.
    root.insert(
        helpers::IMAGES_KEY.to_owned(),
        serde_json::to_value(&context.images).unwrap_or(Value::Null),
    );
    Value::Object(root)
}

/// One pass over one document.
struct Run<'e> {
    engine: &'e Expressions,
    roots: Roots<'e>,
    prefix: &'e str,
    fast_path: bool,
    cache: HashMap<String, Rc<Result<Compiled, Problem>>>,
    first_spec_error: Option<Error>,
    first_failure: Option<Error>,
    first_wait: Option<Error>,
    /// What substitution has written so far (none when only checking).
    budget: Option<OutputBudget>,
}

/// The bytes the expressions of one document have written, against the engine's cap.
struct OutputBudget {
    release: String,
    written: usize,
}

/// Where an expression is, for its errors.
struct Site<'a> {
    path: &'a dyn Fn() -> String,
    expression: &'a str,
}

impl<'e> Run<'e> {
    fn new(engine: &'e Expressions, roots: Roots<'e>, prefix: &'e str) -> Self {
        Run {
            engine,
            roots,
            prefix,
            fast_path: true,
            cache: HashMap::new(),
            first_spec_error: None,
            first_failure: None,
            first_wait: None,
            budget: None,
        }
    }

    fn compiled(&mut self, expression: &str) -> Rc<Result<Compiled, Problem>> {
        if let Some(compiled) = self.cache.get(expression) {
            return Rc::clone(compiled);
        }
        let compiled = Rc::new(self.roots.compile(expression));
        self.cache
            .insert(expression.to_owned(), Rc::clone(&compiled));
        compiled
    }

    fn record(&mut self, error: Error) {
        let slot = if error.needs_spec_change() {
            &mut self.first_spec_error
        } else if error.is_wait() {
            &mut self.first_wait
        } else {
            &mut self.first_failure
        };
        if slot.is_none() {
            *slot = Some(error);
        }
    }

    /// Counts what one expression wrote; the error once the document's total passes the cap,
    /// before anything larger is built.
    fn spend(&mut self, bytes: usize) -> Option<Error> {
        let limit = self.engine.max_output_bytes;
        let budget = self.budget.as_mut()?;
        budget.written = budget.written.saturating_add(bytes);
        (budget.written > limit).then(|| Error::SubstitutionTooLarge {
            release: budget.release.clone(),
            path: self.prefix.to_owned(),
            limit,
        })
    }

    fn into_result(self) -> Result<(), Error> {
        match self
            .first_spec_error
            .or(self.first_failure)
            .or(self.first_wait)
        {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn resolve_string(
        &mut self,
        s: &mut String,
        segments: &[Segment<'_>],
        resolver: &mut Resolver<'_>,
    ) {
        if !s.contains("<<")
            || matches!(
                self.first_spec_error,
                Some(Error::SubstitutionTooLarge { .. })
            )
        {
            return;
        }
        let prefix = self.prefix;
        let path = || format_path(prefix, segments);
        let mut out = String::with_capacity(s.len() + 32);
        let mut failed = false;
        let scanned = scan(s, |piece| match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Expression { text, offset } => {
                if failed {
                    return;
                }
                let site = Site {
                    path: &path,
                    expression: text,
                };
                let before = out.len();
                if let Err(error) =
                    self.evaluate(text, &mut out, resolver, || column(s, offset), &site)
                {
                    self.record(error);
                    failed = true;
                } else if let Some(error) = self.spend(out.len() - before) {
                    self.record(error);
                    failed = true;
                }
            }
        });
        if let Err(error) = scanned {
            self.record(scan_error(&error, s, &path()));
            return;
        }
        if !failed {
            *s = out;
        }
    }

    fn evaluate(
        &mut self,
        expression: &str,
        out: &mut String,
        resolver: &mut Resolver<'_>,
        column: impl Fn() -> usize,
        site: &Site<'_>,
    ) -> Result<(), Error> {
        let compiled = self.compiled(expression);
        let compiled = match compiled.as_ref() {
            Ok(compiled) => compiled,
            Err(problem) => return Err(located(problem, site, column())),
        };
        let mut missing: Vec<(&str, &str)> = Vec::new();
        for (reference, optional) in &compiled.references {
            if *optional || resolver.lookup(reference).is_some() {
                continue;
            }
            match reference {
                Reference::Output { alias, key } => missing.push((alias, key)),
                Reference::Variable(name) => {
                    let defined = resolver
                        .context
                        .environment
                        .as_ref()
                        .map(|e| e.variables.keys().cloned().collect())
                        .unwrap_or_default();
                    return Err(Error::UnknownVariable {
                        at: Box::new(Location {
                            path: (site.path)(),
                            expression: expression.to_owned(),
                            column: column(),
                        }),
                        name: name.clone(),
                        defined,
                    });
                }
                Reference::Image(image) => {
                    return Err(Error::ImageNotResolved {
                        at: Box::new(Location {
                            path: (site.path)(),
                            expression: expression.to_owned(),
                            column: column(),
                        }),
                        image: image.clone(),
                    });
                }
                // The roots were checked against the same context when compiling.
                _ => {}
            }
        }
        if let Some(&(alias, _)) = missing.first() {
            let mut keys: Vec<String> = missing
                .iter()
                .filter(|(a, _)| *a == alias)
                .map(|(_, k)| (*k).to_owned())
                .collect();
            keys.dedup();
            let present = resolver
                .context
                .dependencies
                .get(alias)
                .map(Outputs::key_names)
                .unwrap_or_default();
            return Err(Error::MissingOutput {
                at: Box::new(Location {
                    path: (site.path)(),
                    expression: expression.to_owned(),
                    column: column(),
                }),
                alias: alias.to_owned(),
                missing: keys,
                present,
            });
        }
        if self.fast_path
            && let Some(node) = &compiled.direct
        {
            let failed = |reason: String| Error::Evaluation {
                at: Box::new(Location {
                    path: (site.path)(),
                    expression: expression.to_owned(),
                    column: column(),
                }),
                reason,
            };
            return match evaluate(node, resolver) {
                Ok(Some(value)) => {
                    out.push_str(&value);
                    Ok(())
                }
                // Unreachable: every reference outside `default` was found above, and `default`
                // always has its fallback. Handlebars' strict mode would fail the same way.
                Ok(None) => Err(failed("the expression has no value".to_owned())),
                Err(error) => Err(failed(render_reason(&error))),
            };
        }
        self.render(&compiled.template, out, resolver, site, column())
    }

    fn render(
        &self,
        template: &Template,
        out: &mut String,
        resolver: &mut Resolver<'_>,
        site: &Site<'_>,
        column: usize,
    ) -> Result<(), Error> {
        let registry = &self.engine.registry;
        let context = resolver.handlebars_context();
        let mut render_context = RenderContext::new(None);
        let mut output = StringOutput::new();
        let rendered = template
            .render(registry, context, &mut render_context, &mut output)
            .and_then(|()| output.into_string().map_err(Into::into));
        match rendered {
            Ok(text) => {
                out.push_str(&text);
                Ok(())
            }
            Err(error) => Err(Error::Evaluation {
                at: Box::new(Location {
                    path: (site.path)(),
                    expression: site.expression.to_owned(),
                    column,
                }),
                reason: render_reason(&error),
            }),
        }
    }

    fn check_string(&mut self, s: &str, segments: &[Segment<'_>], report: &mut OfflineReport) {
        if !s.contains("<<") {
            return;
        }
        let prefix = self.prefix;
        let path = || format_path(prefix, segments);
        let scanned = scan(s, |piece| {
            let Piece::Expression { text, offset } = piece else {
                return;
            };
            match self.compiled(text).as_ref() {
                Ok(compiled) => {
                    for (reference, _) in &compiled.references {
                        if let Reference::Output { alias, key } = reference {
                            report.consumes.insert(OutputRef {
                                alias: alias.clone(),
                                key: key.clone(),
                            });
                        }
                    }
                }
                Err(problem) => {
                    let site = Site {
                        path: &path,
                        expression: text,
                    };
                    report
                        .errors
                        .push(located(problem, &site, column(s, offset)));
                }
            }
        });
        if let Err(error) = scanned {
            report.errors.push(scan_error(&error, s, &path()));
        }
    }
}

/// The value of an expression tree, as the Handlebars helpers compute it: `None` is "missing".
fn evaluate<'a>(
    node: &'a Node,
    resolver: &'a Resolver<'_>,
) -> Result<Option<Cow<'a, str>>, RenderError> {
    Ok(match node {
        Node::Literal(text) => Some(Cow::Borrowed(text.as_str())),
        Node::Reference(reference) => resolver.lookup(reference).map(Cow::Borrowed),
        Node::Helper("default", arguments) => match arguments.as_slice() {
            // Both arguments are evaluated, as Handlebars does: a failing fallback fails.
            [value, fallback] => {
                let (value, fallback) = (evaluate(value, resolver)?, evaluate(fallback, resolver)?);
                match value {
                    Some(value) if !value.is_empty() => Some(value),
                    _ => fallback,
                }
            }
            _ => None,
        },
        Node::Helper(name, arguments) => match arguments.first() {
            Some(argument) => match evaluate(argument, resolver)? {
                Some(input) => Some(Cow::Owned(helpers::apply(name, &input)?)),
                None => None,
            },
            None => None,
        },
    })
}

/// A render failure's reason: our helpers' own message, or Handlebars' (which names paths and
/// helpers, never values).
fn render_reason(error: &RenderError) -> String {
    match error.reason() {
        RenderErrorReason::Other(reason) => reason.clone(),
        other => other.to_string(),
    }
}

fn scan_error(error: &ScanError<'_>, s: &str, path: &str) -> Error {
    Error::ExpressionSyntax {
        at: Box::new(Location {
            path: path.to_owned(),
            expression: error.text.to_owned(),
            column: column(s, error.offset),
        }),
        reason: error.reason.to_owned(),
    }
}

fn located(problem: &Problem, site: &Site<'_>, column: usize) -> Error {
    let at = Box::new(Location {
        path: (site.path)(),
        expression: site.expression.to_owned(),
        column,
    });
    match problem {
        Problem::Syntax(reason) => Error::ExpressionSyntax {
            at,
            reason: reason.clone(),
        },
        Problem::UnknownRoot { root, known } => Error::UnknownRoot {
            at,
            root: root.clone(),
            known: known.clone(),
        },
        Problem::Invalid(reason) => Error::InvalidReference {
            at,
            reason: reason.clone(),
        },
    }
}

pub(crate) mod testing {
    //! Access to the slow path for the tests and fuzz target that compare it with the fast one.
    use super::*;

    pub(crate) fn substitute_without_fast_path(
        engine: &Expressions,
        mut values: Value,
        context: &ExpressionContext,
    ) -> Result<Value, Error> {
        engine.substitute_with(&mut values, "", context, false)?;
        Ok(values)
    }
}
