//! What the project's tests share: where the workspace is, and which `helm` and `kubectl`
//! binaries to drive (the pinned ones `scripts/bootstrap-tools` installs, unless told otherwise);
//! with the feature `operators`, the operators' controller-test harness ([`operators`]); with the
//! feature `registry`, a real OCI registry ([`registry`]).
//!
//! A test that needs a tool and cannot find it fails with instructions; it never skips, so a
//! machine without the tool cannot pass by running less.

use std::path::{Path, PathBuf};

pub mod git_server;
#[cfg(feature = "operators")]
pub mod operators;
pub mod process;
#[cfg(feature = "registry")]
pub mod registry;

/// The root of the Cargo workspace.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `helm`: `UPSTART_HELM` (when set and not empty), else `.tools/bin/helm` of the workspace, else PATH.
///
/// # Panics
/// When none is found, with a message saying how to install it.
pub fn helm() -> PathBuf {
    tool("helm", "UPSTART_HELM")
}

/// `kubectl`: `UPSTART_KUBECTL` (when set and not empty), else `.tools/bin/kubectl` of the workspace, else PATH.
///
/// # Panics
/// When none is found, with a message saying how to install it.
pub fn kubectl() -> PathBuf {
    tool("kubectl", "UPSTART_KUBECTL")
}

fn tool(name: &str, variable: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{variable} points to {}, which is not a file",
            path.display()
        );
        return path;
    }
    let local = workspace_root().join(".tools/bin").join(name);
    if local.is_file() {
        return local;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} is needed for this test: set {variable}, or run scripts/bootstrap-tools \
                 (it installs .tools/bin/{name}), or put {name} on PATH"
            )
        })
}
