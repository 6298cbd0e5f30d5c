//! The record a running local cluster keeps next to its kubeconfig (`KUBECONFIG.dev.json`:
//! pid, port, kubeconfig, start time), so that a second one can say who holds a port and never
//! overwrites the kubeconfig of a live one. Removed when the cluster stops.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What the record file's name adds to the kubeconfig's.
const SUFFIX: &str = ".dev.json";

/// A running local cluster, as its record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The process holding it.
    pub pid: u32,
    /// The API server's port; `None` while it is starting.
    pub port: Option<u16>,
    /// Its kubeconfig (absolute).
    pub kubeconfig: PathBuf,
    /// When it started (RFC 3339, UTC).
    pub started: String,
}

impl std::fmt::Display for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(port) = self.port {
            write!(f, ", port {port}")?;
        }
        write!(
            f,
            ", started {}, kubeconfig {}",
            self.started,
            self.kubeconfig.display()
        )
    }
}

/// The record of this process's cluster: created when the cluster starts, removed when it
/// stops (or is dropped).
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    instance: Instance,
}

impl Claim {
    /// Claims `kubeconfig` for this process. Refused while the record of a live process names
    /// it; a record left by a process that is gone is replaced.
    pub fn take(kubeconfig: &Path) -> Result<Claim, Error> {
        let kubeconfig = std::path::absolute(kubeconfig).unwrap_or_else(|_| kubeconfig.into());
        let path = record_path(&kubeconfig);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| record_error(&path, &e))?;
        }
        let instance = Instance {
            pid: std::process::id(),
            port: None,
            kubeconfig,
            started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        };
        // create_new makes the claim atomic: of two instances starting at once, one wins.
        for _ in 0..3 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(&to_json(&instance))
                        .map_err(|e| record_error(&path, &e))?;
                    return Ok(Claim { path, instance });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if let Some(holder) = read_live(&path) {
                        return Err(Error::KubeconfigInUse {
                            kubeconfig: instance.kubeconfig,
                            holder: Box::new(holder),
                        });
                    }
                    // Left by a process that is gone (killed, crashed).
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(record_error(&path, &e)),
                    }
                }
                Err(e) => return Err(record_error(&path, &e)),
            }
        }
        Err(record_error(
            &path,
            &std::io::Error::other("another process keeps creating it"),
        ))
    }

    /// Records the port the API server got.
    pub fn set_port(&mut self, port: u16) -> Result<(), Error> {
        self.instance.port = Some(port);
        // Written aside and renamed, so a reader never sees half a record.
        let partial = self
            .path
            .with_extension(format!("json.{}", std::process::id()));
        std::fs::write(&partial, to_json(&self.instance))
            .and_then(|()| std::fs::rename(&partial, &self.path))
            .map_err(|e| record_error(&self.path, &e))
    }

    /// This process's record.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// Where the record is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Only our own record: a stale claim may have been replaced by a live process.
        if read(&self.path).is_some_and(|i| i.pid == self.instance.pid)
            && let Err(error) = std::fs::remove_file(&self.path)
        {
            tracing::warn!(path = %self.path.display(), %error, "removing the instance record");
        }
    }
}

/// The live instance whose record, in the directory of `kubeconfig`, says it holds `port`.
pub fn holder_of_port(kubeconfig: &Path, port: u16) -> Option<Instance> {
    let kubeconfig = std::path::absolute(kubeconfig).unwrap_or_else(|_| kubeconfig.into());
    let dir = kubeconfig.parent()?;
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(SUFFIX)))
        .filter_map(|p| read_live(&p))
        .find(|i| i.port == Some(port))
}

/// `KUBECONFIG.dev.json`, next to the kubeconfig.
pub fn record_path(kubeconfig: &Path) -> PathBuf {
    let mut name = kubeconfig.file_name().unwrap_or_default().to_os_string();
    name.push(SUFFIX);
    kubeconfig.with_file_name(name)
}

fn read(path: &Path) -> Option<Instance> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The record at `path` if its process is still running.
fn read_live(path: &Path) -> Option<Instance> {
    read(path).filter(|i| is_alive(i.pid))
}

fn to_json(instance: &Instance) -> Vec<u8> {
    let mut json = serde_json::to_vec_pretty(instance).unwrap_or_default();
    json.push(b'\n');
    json
}

#[cfg(unix)]
fn is_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        // It exists, and belongs to someone else.
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// Without a way to ask, a record is taken as live: refusing is safer than overwriting.
#[cfg(not(unix))]
fn is_alive(_pid: u32) -> bool {
    true
}

fn record_error(path: &Path, error: &std::io::Error) -> Error {
    Error::InstanceRecord {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    #[test]
    fn a_claim_is_refused_while_its_holder_lives_and_taken_over_when_it_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let mut first = Claim::take(&kubeconfig).unwrap();
        first.set_port(6443).unwrap();
        assert_eq!(first.path(), dir.path().join("kubeconfig.dev.json"));

        let Err(Error::KubeconfigInUse { holder, .. }) = Claim::take(&kubeconfig) else {
            panic!("a second claim of a live kubeconfig is refused");
        };
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.port, Some(6443));
        assert_eq!(
            holder_of_port(&kubeconfig, 6443).map(|i| i.pid),
            Some(std::process::id())
        );
        assert_eq!(holder_of_port(&kubeconfig, 1), None);

        drop(first);
        assert!(!dir.path().join("kubeconfig.dev.json").exists());

        // A record whose process is gone (pid far above any pid_max) is replaced.
        let stale = Instance {
            pid: 999_999_999,
            port: Some(6443),
            kubeconfig: kubeconfig.clone(),
            started: "2026-01-01T00:00:00Z".to_owned(),
        };
        std::fs::write(record_path(&kubeconfig), to_json(&stale)).unwrap();
        assert_eq!(holder_of_port(&kubeconfig, 6443), None);
        let claim = Claim::take(&kubeconfig).unwrap();
        assert_eq!(claim.instance().pid, std::process::id());
    }
}
