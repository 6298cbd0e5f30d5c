//! The digest-addressed chart cache on disk, with per-key locks so concurrent requests for the
//! same chart do the work once.
//!
//! Layout under the cache directory:
//! - `archives/sha256/<hex>.tgz`: verified archives;
//! - `charts/sha256/<hex>/`: the chart directory unpacked from that archive;
//! - `assembled/sha256/<hex>/`: a chart with the dependencies it lists but does not vendor
//!   added to its `charts/`, `<hex>` being the digest of its and their archives;
//! - `git/<hex>`: which archive the chart of a git repository, commit and directory is
//!   (`<hex>` digests those three; the file holds the archive's hex and the chart's name), so
//!   a commit is fetched from git once, across restarts;
//! - `tmp/`: work in progress. Every entry is written there and renamed into place, so an
//!   entry either exists complete or not at all, even after a crash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use sha2::{Digest as _, Sha256};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::archive::{self, ChartMeta};
use crate::{Error, Limits};

/// Hex sha256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Whether `hex` is a lowercase hex sha256 (so it can be used as a file name).
pub(crate) fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[derive(Debug)]
pub(crate) struct Cache {
    root: PathBuf,
    locks: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

impl Cache {
    /// Opens (creating) the cache under `root`. Leftovers of interrupted work in `tmp/` are
    /// removed: the cache directory belongs to one process.
    pub(crate) fn new(root: PathBuf) -> Result<Self, Error> {
        let tmp = root.join("tmp");
        if tmp.is_dir() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::cache(&tmp, e))?;
        }
        for dir in [
            "archives/sha256",
            "charts/sha256",
            "assembled/sha256",
            "git",
            "tmp",
        ] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(|e| Error::cache(&path, e))?;
        }
        Ok(Self {
            root,
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// Holds `key` exclusively until the guard is dropped. Keys are digests or URLs.
    pub(crate) async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.retain(|_, weak| weak.strong_count() > 0);
            match locks.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(AsyncMutex::new(()));
                    locks.insert(key.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    pub(crate) fn archive_path(&self, hex: &str) -> PathBuf {
        self.root.join("archives/sha256").join(format!("{hex}.tgz"))
    }

    pub(crate) fn chart_dir(&self, hex: &str) -> PathBuf {
        self.root.join("charts/sha256").join(hex)
    }

    /// A chart with the dependencies it did not vendor fetched into its `charts/`, named by
    /// the digest of the chart's and the dependencies' archives.
    pub(crate) fn assembled_dir(&self, hex: &str) -> PathBuf {
        self.root.join("assembled/sha256").join(hex)
    }

    /// The archive (hex) and chart name recorded for a git chart `key` (repository, commit,
    /// directory), when it was fetched before.
    pub(crate) fn git_chart(&self, key: &str) -> Option<(String, String)> {
        let text =
            std::fs::read_to_string(self.root.join("git").join(sha256_hex(key.as_bytes()))).ok()?;
        let (hex, name) = text.trim_end().split_once('\n')?;
        (is_sha256_hex(hex) && crate::reference::valid_chart_name(name))
            .then(|| (hex.to_owned(), name.to_owned()))
    }

    /// Records which archive the git chart `key` is (written atomically).
    pub(crate) fn record_git_chart(&self, key: &str, hex: &str, name: &str) -> Result<(), Error> {
        let tmp = self.tmp_dir();
        let mut file = tempfile::NamedTempFile::new_in(&tmp).map_err(|e| Error::cache(&tmp, e))?;
        std::io::Write::write_all(&mut file, format!("{hex}\n{name}\n").as_bytes())
            .map_err(|e| Error::cache(&tmp, e))?;
        let path = self.root.join("git").join(sha256_hex(key.as_bytes()));
        file.persist(&path)
            .map_err(|e| Error::cache(&path, e.error))?;
        Ok(())
    }

    /// Where work in progress is staged before it is renamed into place.
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The cached chart for `hex`, when it has been unpacked before. Its `Chart.yaml` is read
    /// again so the caller can check name and version.
    pub(crate) async fn cached_chart(
        &self,
        hex: &str,
        chart: &str,
    ) -> Result<Option<(PathBuf, ChartMeta)>, Error> {
        let dir = self.chart_dir(hex);
        let chart = chart.to_owned();
        tokio::task::spawn_blocking(move || {
            if !dir.is_dir() {
                return Ok(None);
            }
            let meta = archive::read_chart_yaml(&chart, &dir)?;
            Ok(Some((dir, meta)))
        })
        .await
        .map_err(|e| Error::cache(&self.root, std::io::Error::other(e)))?
    }

    /// The cached archive for `hex`, when present and intact.
    pub(crate) async fn cached_archive(&self, hex: &str) -> Result<Option<Vec<u8>>, Error> {
        let path = self.archive_path(hex);
        match tokio::fs::read(&path).await {
            Ok(bytes) if sha256_hex(&bytes) == hex => Ok(Some(bytes)),
            Ok(_) => {
                // A damaged file (disk trouble): drop it and download again.
                tracing::warn!(path = %path.display(), "cached chart archive does not match its digest; removing it");
                let _ = tokio::fs::remove_file(&path).await;
                Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::cache(&path, e)),
        }
    }

    /// Stores a verified archive and unpacks it, both atomically; returns the chart directory
    /// and what its `Chart.yaml` says. `hex` must be the archive's sha256.
    pub(crate) async fn store(
        &self,
        hex: &str,
        archive: Vec<u8>,
        chart: &str,
        limits: &Limits,
    ) -> Result<(PathBuf, ChartMeta), Error> {
        let archive_path = self.archive_path(hex);
        let chart_dir = self.chart_dir(hex);
        let tmp = self.root.join("tmp");
        let chart = chart.to_owned();
        let limits = limits.clone();
        tokio::task::spawn_blocking(move || {
            store_blocking(&tmp, &archive_path, &chart_dir, &archive, &chart, &limits)
        })
        .await
        .map_err(|e| Error::cache(&self.root, std::io::Error::other(e)))?
    }
}

fn store_blocking(
    tmp: &Path,
    archive_path: &Path,
    chart_dir: &Path,
    archive: &[u8],
    chart: &str,
    limits: &Limits,
) -> Result<(PathBuf, ChartMeta), Error> {
    // Unpack first: an unsafe archive is never kept in the cache.
    if !chart_dir.is_dir() {
        let work = tempfile::Builder::new()
            .prefix("unpack-")
            .tempdir_in(tmp)
            .map_err(|e| Error::cache(tmp, e))?;
        let staged = work.path().join("chart");
        archive::unpack(archive, chart, limits, &staged)?;
        match std::fs::rename(&staged, chart_dir) {
            Ok(()) => {}
            // Another process got there first with the same content.
            Err(_) if chart_dir.is_dir() => {}
            Err(e) => return Err(Error::cache(chart_dir, e)),
        }
    }
    if !archive_path.is_file() {
        let mut file = tempfile::NamedTempFile::new_in(tmp).map_err(|e| Error::cache(tmp, e))?;
        std::io::Write::write_all(&mut file, archive).map_err(|e| Error::cache(tmp, e))?;
        file.as_file()
            .sync_all()
            .map_err(|e| Error::cache(tmp, e))?;
        file.persist(archive_path)
            .map_err(|e| Error::cache(archive_path, e.error))?;
    }
    let meta = archive::read_chart_yaml(chart, chart_dir)?;
    Ok((chart_dir.to_path_buf(), meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_is_lowercase_hex() {
        let hex = sha256_hex(b"abc");
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_sha256_hex(&hex));
        assert!(!is_sha256_hex("../../etc"));
    }
}
