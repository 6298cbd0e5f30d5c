//! The pure core of the Upstart orchestration (SPEC §2.3, §3, §5): ordering releases by their
//! dependencies, collecting the outputs they publish, merging values and substituting
//! `<< dep.outputs.KEY >>` expressions. No I/O: every function works on plain data, so the three
//! operators and the CLI share one tested implementation.

mod error;
pub mod expressions;
pub mod graph;
pub mod outputs;
pub mod values;

pub use error::{Error, Location};
pub use expressions::{
    EnvironmentInfo, ExpressionContext, Expressions, OfflineContext, OfflineReport, OutputRef,
    ReleaseInfo, ServiceInfo, check_aliases,
};
pub use graph::{
    CriticalStep, Cycle, DependencyGraph, GraphInput, NodeId, NodeKind, Ordering,
    ResolvedDependency, Timing,
};
pub use outputs::{
    CollectedOutputs, MissingSource, Objects, Outputs, collect_release_outputs,
    collect_service_outputs,
};
pub use values::{merge_values, release_values};
