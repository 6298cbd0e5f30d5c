//! The Upstart custom resources (SPEC §1–§4): Rust types, generated CRDs and the naming and
//! condition rules every operator shares.

pub mod conditions;
pub mod crd;
pub mod duration;
pub mod labels;
pub mod names;
pub mod phase;
pub mod v1alpha1;

/// The API group of every Upstart resource.
pub const GROUP: &str = "upstartoperators.upstart.com";
/// The one served (and stored) version.
pub const VERSION: &str = "v1alpha1";
/// `kubectl get upstart` lists all three kinds.
pub const CATEGORY: &str = "upstart";
