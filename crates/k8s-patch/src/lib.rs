//! Kubernetes write semantics as pure functions over `serde_json::Value`: JSON merge patch,
//! JSON patch, strategic merge patch, and server-side apply with `metadata.managedFields`.
//!
//! This crate does no I/O; the local control plane calls it for every PATCH and apply, and for
//! every write to record field ownership.
//!
//! - [`merge_patch`], [`create_merge_patch`], [`apply_json_patch`]: RFC 7386 and RFC 6902.
//! - [`strategic_merge`]: strategic merge patch for built-in kinds; custom resources get
//!   [`Error::StrategicMergeUnsupported`] (415), see [`Semantics::supports_strategic_merge`].
//! - [`apply`]: server-side apply, with conflicts ([`Error::Conflict`], 409) and `force`.
//! - [`record_update`]: the `Update` ownership a create, update or patch records.
//! - [`Semantics`]: list and map merge rules, built in or from a CRD's `openAPIV3Schema`.
//!
//! The apply and update algorithms follow structured-merge-diff (`merge/update.go`,
//! `typed/{merge,compare,remove,tofieldset}.go`) and the apiserver's field manager wrappers
//! (server-set metadata never owned, `before-first-apply`, status reset fields, timestamps kept
//! when only timestamps would change, at most ten updaters before `ancient-changes`, entry
//! order, the conflict message, and the `kubectl` manager's interplay with client-side apply's
//! last-applied annotation). The caller must
//! route every write through [`apply`] or [`record_update`]: an object without managedFields
//! hands all its fields to `before-first-apply` on its first apply, as the apiserver does.
//!
//! Not modelled: conversion between apiVersions (entries of all versions are compared on the
//! same object), and the Go zero values that make a built-in create record no `.` for
//! non-pointer structs (this crate records one, which changes nothing but the look of
//! `fieldsV1`).

mod fieldpath;
mod json;
mod managed;
mod semantics;
mod strategic;
mod typed;

pub use fieldpath::{FieldSet, Path, PathElement};
pub use json::{apply_json_patch, create_merge_patch, merge_patch};
pub use managed::{
    ANCIENT_CHANGES, ApplyParams, BEFORE_FIRST_APPLY, Conflict, Conflicts, LAST_APPLIED_ANNOTATION,
    ManagedFieldsEntry, Operation, UpdateParams, WriteScope, apply, managed_fields, record_update,
};
pub use semantics::{ListMapKey, ListType, MapType, Semantics, StrategicList};
pub use strategic::strategic_merge;

/// Why a patch or apply was refused. [`Error::status_code`] and [`Error::reason`] give the
/// apiserver's answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another manager owns fields this apply would change (409 Conflict).
    #[error("{0}")]
    Conflict(Conflicts),
    /// An apply configuration carried `metadata.managedFields` (400 Bad Request).
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsInApply,
    /// The object or configuration is not a JSON object (400 Bad Request).
    #[error("the object is not a JSON object")]
    NotAnObject,
    /// Stored `metadata.managedFields` could not be read (500).
    #[error("failed to decode managed fields: {0}")]
    InvalidManagedFields(String),
    /// A `fieldsV1` value could not be read (500).
    #[error("failed to decode fieldsV1: {0}")]
    InvalidFieldsV1(String),
    /// An associative list or set is malformed: an item without its keys, duplicate keys, a
    /// non-scalar in a set (422 Unprocessable Entity).
    #[error("{0}")]
    InvalidList(String),
    /// Strategic merge patch of a custom resource (415 Unsupported Media Type).
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )]
    StrategicMergeUnsupported,
    /// The patch document is malformed (400 Bad Request).
    #[error("invalid patch: {0}")]
    InvalidPatch(String),
    /// A JSON patch operation failed, e.g. a `test` (422 Unprocessable Entity).
    #[error("{0}")]
    JsonPatchFailed(String),
}

impl Error {
    /// The HTTP status the apiserver answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::Conflict(_) => 409,
            Error::ManagedFieldsInApply | Error::NotAnObject | Error::InvalidPatch(_) => 400,
            Error::InvalidList(_) | Error::JsonPatchFailed(_) => 422,
            Error::StrategicMergeUnsupported => 415,
            Error::InvalidManagedFields(_) | Error::InvalidFieldsV1(_) => 500,
        }
    }

    /// The `reason` of the apiserver's `Status` (also a bounded label for metrics).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Conflict(_) => "Conflict",
            Error::ManagedFieldsInApply | Error::NotAnObject | Error::InvalidPatch(_) => {
                "BadRequest"
            }
            Error::InvalidList(_) | Error::JsonPatchFailed(_) => "Invalid",
            Error::StrategicMergeUnsupported => "UnsupportedMediaType",
            Error::InvalidManagedFields(_) | Error::InvalidFieldsV1(_) => "InternalError",
        }
    }
}
