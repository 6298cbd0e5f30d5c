//! Packs: a chart directory with the overlay's cache (upstream indexes and archives) in one
//! `.tar.gz`, to carry to a machine without network, where [`unpack`] makes a directory that
//! `upstart charts serve` or `upstart dev` serve as they were, the upstreams' charts from the
//! cache.
//!
//! The pack holds the directory's files as they are (chart directories stay editable) and the
//! cache under `.upstart-cache/`. Links are followed when packing; unpacking accepts only
//! regular files and directories inside the target, and refuses a target that is not empty.

use std::path::{Component, Path, PathBuf};

use crate::overlay::CACHE_DIR_NAME;
use crate::{ChartRepo, Error};

/// What a pack holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackSummary {
    /// Charts of the directory (chart directories and pushed archives).
    pub local_charts: usize,
    /// Upstream archives kept in the cache.
    pub cached_archives: usize,
}

/// Packs `charts_dir` and the cache (`cache_dir`, by default `charts_dir/.upstart-cache`) into
/// `out`. The directory must serve as it is (every chart packages).
pub fn pack(charts_dir: &Path, cache_dir: Option<&Path>, out: &Path) -> Result<PackSummary, Error> {
    let local_charts = ChartRepo::from_dir(charts_dir)?.charts().len();
    let default_cache = charts_dir.join(CACHE_DIR_NAME);
    let cache_dir = cache_dir.unwrap_or(&default_cache);
    let fail = |message: String| Error::Pack {
        path: out.to_path_buf(),
        message,
    };
    let out_abs = std::path::absolute(out).map_err(|e| fail(e.to_string()))?;
    let file = std::fs::File::create(out).map_err(|source| Error::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let gzip = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gzip);
    tar.follow_symlinks(true);
    let mut files = Vec::new();
    walk(charts_dir, Path::new(""), &mut files, true)?;
    let mut cached_archives = 0;
    if cache_dir.is_dir() {
        let mut cached = Vec::new();
        walk(cache_dir, Path::new(CACHE_DIR_NAME), &mut cached, false)?;
        cached_archives = cached
            .iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "tgz"))
            .count();
        files.extend(cached);
    }
    for (name, path) in files {
        // The pack itself, when written inside the directory.
        if std::path::absolute(&path).is_ok_and(|p| p == out_abs) {
            continue;
        }
        tar.append_path_with_name(&path, &name)
            .map_err(|e| fail(format!("adding {}: {e}", path.display())))?;
    }
    let gzip = tar
        .into_inner()
        .map_err(|e| fail(format!("writing: {e}")))?;
    gzip.finish().map_err(|e| fail(format!("writing: {e}")))?;
    Ok(PackSummary {
        local_charts,
        cached_archives,
    })
}

/// Every file under `dir` as (name in the pack, path), sorted; at the top, the cache directory
/// is left to the caller when `skip_cache`.
fn walk(
    dir: &Path,
    prefix: &Path,
    out: &mut Vec<(PathBuf, PathBuf)>,
    skip_cache: bool,
) -> Result<(), Error> {
    for entry in crate::sorted_entries(dir)? {
        if skip_cache && entry.file_name() == CACHE_DIR_NAME {
            continue;
        }
        let path = entry.path();
        let name = prefix.join(entry.file_name());
        if path.is_dir() {
            walk(&path, &name, out, false)?;
        } else if path.is_file() {
            out.push((name, path));
        }
    }
    Ok(())
}

/// Unpacks the pack `file` into `into` (created when missing; it must be empty), then checks
/// that the result serves.
pub fn unpack(file: &Path, into: &Path) -> Result<PackSummary, Error> {
    let fail = |message: String| Error::Pack {
        path: file.to_path_buf(),
        message,
    };
    if into.exists() {
        let mut entries = std::fs::read_dir(into).map_err(|source| Error::Read {
            path: into.to_path_buf(),
            source,
        })?;
        if entries.next().is_some() {
            return Err(Error::Pack {
                path: into.to_path_buf(),
                message: "is not empty: unpack into a new directory (--into DIR)".into(),
            });
        }
    }
    let reader = std::fs::File::open(file).map_err(|source| Error::Read {
        path: file.to_path_buf(),
        source,
    })?;
    std::fs::create_dir_all(into).map_err(|source| Error::Write {
        path: into.to_path_buf(),
        source,
    })?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let entries = tar
        .entries()
        .map_err(|e| fail(format!("not a pack (.tar.gz): {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(format!("not a pack (.tar.gz): {e}")))?;
        let path = entry
            .path()
            .map_err(|e| fail(format!("an entry's path: {e}")))?
            .into_owned();
        let kind = entry.header().entry_type();
        let inside = path.components().all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(fail(format!(
                "entry {} leaves the target directory; packs made by `upstart charts pack` never do",
                path.display()
            )));
        }
        if !(kind.is_file() || kind.is_dir()) {
            return Err(fail(format!(
                "entry {} is not a regular file or directory; packs made by `upstart charts pack` hold no links",
                path.display()
            )));
        }
        entry
            .unpack_in(into)
            .map_err(|e| fail(format!("unpacking {}: {e}", path.display())))?;
    }
    let local_charts = ChartRepo::from_dir(into)?.charts().len();
    let cache = into.join(CACHE_DIR_NAME);
    let mut cached = Vec::new();
    if cache.is_dir() {
        walk(&cache, Path::new(""), &mut cached, false)?;
    }
    Ok(PackSummary {
        local_charts,
        cached_archives: cached
            .iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "tgz"))
            .count(),
    })
}
