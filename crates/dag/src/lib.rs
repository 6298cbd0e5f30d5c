//! The pure core of the Upstart orchestration (SPEC §2.3, §3, §5): ordering releases by their
//! dependencies, collecting the outputs they publish, merging values and substituting
//! `<< dep.outputs.KEY >>` expressions. No I/O: every function works on plain data, so the three
//! operators and the CLI share one tested implementation.
//!
//! ```
//! use upstart_api::v1alpha1::Dependency;
//! use upstart_dag::{DependencyGraph, ExpressionContext, Expressions, GraphInput, NodeId, Outputs};
//!
//! // Order: a service whose `app` needs its sibling `postgres`.
//! let postgres = Dependency { name: "postgres".into(), kind: None, alias: None };
//! let mut input = GraphInput::new();
//! input.add_service_releases("svc", [("postgres".into(), vec![]), ("app".into(), vec![postgres])]);
//! let graph = DependencyGraph::build(&input);
//! let ordering = graph.ordering();
//! assert_eq!(ordering.install_levels[0], [NodeId::release("svc-postgres")]);
//! assert!(ordering.cycles.is_empty());
//!
//! // Wire: `app` reads the outputs its dependency publishes.
//! let mut context = ExpressionContext::default();
//! for dependency in graph.dependencies(&NodeId::release("svc-app")) {
//!     let outputs: Outputs = [("POSTGRES_USER", "app")].into_iter().collect();
//!     context.dependencies.insert(dependency.alias.clone(), outputs);
//! }
//! let values = serde_json::json!({"url": "postgres://<< postgres.outputs.POSTGRES_USER >>@db"});
//! let values = Expressions::new().substitute(values, "spec.values", &context).unwrap();
//! assert_eq!(values["url"], "postgres://app@db");
//! ```

mod error;
pub mod expressions;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod graph;
pub mod outputs;
pub mod switches;
pub mod template;
pub mod values;

pub use error::{Error, Location, reasons};
pub use expressions::{
    EnvironmentInfo, ExpressionContext, Expressions, ImageRef, OfflineContext, OfflineReport,
    OutputRef, ReleaseInfo, ServiceInfo, check_aliases, parse_image,
};
pub use graph::{
    CriticalStep, Cycle, DependencyGraph, GraphInput, NodeId, NodeKind, Ordering,
    ResolvedDependency, Timing,
};
pub use outputs::{
    CollectedOutputs, MissingSource, Objects, Outputs, collect_release_outputs,
    collect_service_outputs,
};
pub use switches::{Switched, dependencies_on_disabled, is_enabled, switch_releases};
pub use template::validate_template;
pub use values::{apply_override, merge_values, release_values};
