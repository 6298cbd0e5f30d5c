//! The act side of a reconcile, one module per action: an apply run (`apply`, driving one
//! `install` pass of render, hooks, objects and prune), and the deletion (`teardown`).

pub(super) mod apply;
pub(super) mod hooks;
pub(super) mod install;
pub(super) mod objects;
pub(super) mod prune;
pub(super) mod teardown;
