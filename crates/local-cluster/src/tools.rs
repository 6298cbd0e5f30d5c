//! Finding the external tools the in-process operators drive (`helm`), the way the project's
//! scripts install them: `UPSTART_HELM`, else `.tools/bin/helm` of this directory or one of its
//! parents (where `scripts/bootstrap-tools` puts the pinned build), else `PATH`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment variable naming the `helm` binary, as for the tests.
pub const HELM_ENV: &str = "UPSTART_HELM";

/// Finds `helm` from the current directory and the process environment (see the module
/// documentation); `None` when there is none.
pub fn locate_helm() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok();
    locate(
        "helm",
        std::env::var_os(HELM_ENV),
        cwd.as_deref(),
        std::env::var_os("PATH"),
    )
}

/// The lookup itself, over explicit inputs so it can be tested without touching the process.
fn locate(
    name: &str,
    explicit: Option<OsString>,
    cwd: Option<&Path>,
    path: Option<OsString>,
) -> Option<PathBuf> {
    if let Some(explicit) = explicit.filter(|p| !p.is_empty()) {
        // Named on purpose: used as given, even if missing, so a typo is reported as such.
        return Some(PathBuf::from(explicit));
    }
    let pinned = cwd
        .into_iter()
        .flat_map(Path::ancestors)
        .map(|dir| dir.join(".tools").join("bin").join(name));
    let on_path = path
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .collect::<Vec<_>>();
    pinned.chain(on_path).find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
    }

    #[test]
    fn explicit_path_wins_even_when_missing() {
        let found = locate("helm", Some("/nowhere/helm".into()), None, None);
        assert_eq!(found, Some(PathBuf::from("/nowhere/helm")));
    }

    #[test]
    fn pinned_tool_of_a_parent_directory_comes_before_path() {
        let tmp = tempfile::tempdir().unwrap();
        let pinned = tmp.path().join(".tools/bin/helm");
        touch(&pinned);
        let elsewhere = tmp.path().join("usr/bin/helm");
        touch(&elsewhere);
        let cwd = tmp.path().join("crates/x");
        std::fs::create_dir_all(&cwd).unwrap();
        let path = std::env::join_paths([tmp.path().join("usr/bin")]).unwrap();
        assert_eq!(
            locate(
                "helm",
                Some(OsString::new()),
                Some(&cwd),
                Some(path.clone())
            ),
            Some(pinned.clone())
        );
        std::fs::remove_file(&pinned).unwrap();
        assert_eq!(
            locate("helm", None, Some(&cwd), Some(path)),
            Some(elsewhere)
        );
    }

    #[test]
    fn nothing_found_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        let path = std::env::join_paths([tmp.path()]).unwrap();
        assert_eq!(locate("helm", None, Some(tmp.path()), Some(path)), None);
    }
}
