//! Unpacking a chart archive safely: only regular files, directories and links that stay
//! inside the chart; one top-level directory named like the chart; size and count limits, with
//! what links lead to counted once per link.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Limits};

/// What `Chart.yaml` says about the unpacked chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartMeta {
    pub name: String,
    pub version: String,
}

#[derive(Deserialize)]
struct ChartYaml {
    name: Option<String>,
    version: Option<String>,
}

/// A reader that fails once more than `remaining` bytes have been read, so a gzip bomb stops
/// early whatever the tar headers claim.
struct Limited<R> {
    inner: R,
    remaining: u64,
    exceeded: bool,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.remaining {
            self.exceeded = true;
            return Err(io::Error::other("decompressed size limit exceeded"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn unsafe_archive(chart: &str, reason: impl Into<String>) -> Error {
    Error::UnsafeArchive {
        chart: chart.to_owned(),
        reason: reason.into(),
    }
}

fn invalid_archive(chart: &str, reason: impl Into<String>) -> Error {
    Error::InvalidArchive {
        chart: chart.to_owned(),
        reason: reason.into(),
    }
}

/// Splits an archive path into its components, refusing absolute paths and `..`.
fn components<'a>(chart: &str, path: &'a str) -> Result<Vec<&'a str>, Error> {
    if path.starts_with('/') {
        return Err(unsafe_archive(
            chart,
            format!("entry {path:?} has an absolute path"),
        ));
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(unsafe_archive(
            chart,
            format!("entry {path:?} contains `..`"),
        ));
    }
    Ok(parts)
}

/// Resolves a link target lexically against the link's directory (both relative to the chart
/// directory). `None` when it climbs above the chart directory.
fn resolve_inside(dir: &[&str], target: &str) -> Option<Vec<String>> {
    let mut resolved: Vec<String> = dir.iter().map(|s| (*s).to_owned()).collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                resolved.pop()?;
            }
            other => resolved.push(other.to_owned()),
        }
    }
    Some(resolved)
}

fn io_error(dest: &Path, source: io::Error) -> Error {
    Error::cache(dest, source)
}

/// Unpacks `archive` (a `.tgz`) into `dest` (which must not exist yet), making `dest` the
/// chart directory: the archive's single top-level directory is stripped. Checks the layout
/// and that `Chart.yaml` names `chart`; returns its name and version.
pub(crate) fn unpack(
    archive: &[u8],
    chart: &str,
    limits: &Limits,
    dest: &Path,
) -> Result<ChartMeta, Error> {
    if archive.len() as u64 > limits.max_archive_bytes {
        return Err(Error::LimitExceeded {
            what: format!("chart archive for {chart:?} ({} bytes)", archive.len()),
            limit: limits.max_archive_bytes,
            setting: "maxArchiveBytes",
        });
    }
    std::fs::create_dir(dest).map_err(|e| io_error(dest, e))?;
    // Headers and padding come on top of the file contents; allow generously for them.
    let stream_limit = limits
        .max_unpacked_bytes
        .saturating_add(limits.max_files.saturating_mul(3 * 512))
        .saturating_add(1 << 20);
    let mut reader = Limited {
        inner: flate2::read::GzDecoder::new(archive),
        remaining: stream_limit,
        exceeded: false,
    };
    let result = unpack_entries(&mut reader, chart, limits, dest);
    if reader.exceeded {
        return Err(Error::LimitExceeded {
            what: format!("unpacked chart {chart:?}"),
            limit: limits.max_unpacked_bytes,
            setting: "maxUnpackedBytes",
        });
    }
    let top = result?;
    if top != chart {
        return Err(invalid_archive(
            chart,
            format!("the top-level directory is {top:?}, not the chart's name"),
        ));
    }
    let meta = read_chart_yaml(chart, dest)?;
    if meta.name != chart {
        return Err(invalid_archive(
            chart,
            format!("Chart.yaml names the chart {:?}", meta.name),
        ));
    }
    Ok(meta)
}

fn unpack_entries<R: Read>(
    reader: &mut R,
    chart: &str,
    limits: &Limits,
    dest: &Path,
) -> Result<String, Error> {
    let corrupt = |e: io::Error| invalid_archive(chart, format!("not a readable .tgz: {e}"));
    let mut tar = tar::Archive::new(reader);
    let mut top: Option<String> = None;
    let mut files: u64 = 0;
    let mut bytes: u64 = 0;
    let mut links: HashSet<PathBuf> = HashSet::new();
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        files += 1;
        if files > limits.max_files {
            return Err(Error::LimitExceeded {
                what: format!("number of entries in chart {chart:?}"),
                limit: limits.max_files,
                setting: "maxFiles",
            });
        }
        let raw = entry.path_bytes();
        let path = std::str::from_utf8(&raw)
            .map_err(|_| invalid_archive(chart, "an entry's path is not UTF-8"))?
            .to_owned();
        let parts = components(chart, &path)?;
        let Some((first, rest)) = parts.split_first() else {
            return Err(invalid_archive(
                chart,
                format!("entry {path:?} has an empty path"),
            ));
        };
        match &top {
            None => top = Some((*first).to_owned()),
            Some(t) if t != first => {
                return Err(invalid_archive(
                    chart,
                    format!("more than one top-level entry ({t:?} and {first:?})"),
                ));
            }
            Some(_) => {}
        }
        let target = rest.iter().fold(dest.to_path_buf(), |p, c| p.join(c));
        if rest.is_empty() && !kind.is_dir() {
            return Err(invalid_archive(
                chart,
                format!(
                    "{path:?} is not a directory: the archive must hold one top-level directory"
                ),
            ));
        }
        // Nothing may be written through a link this archive created.
        if goes_through_link(dest, rest, &links) {
            return Err(unsafe_archive(
                chart,
                format!("entry {path:?} goes through a link"),
            ));
        }
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| io_error(&target, e))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        if target.symlink_metadata().is_ok() {
            return Err(unsafe_archive(
                chart,
                format!("entry {path:?} appears twice"),
            ));
        }
        if kind.is_file() || kind == tar::EntryType::Continuous {
            let size = entry.header().size().map_err(corrupt)?;
            bytes = add_bytes(chart, limits, bytes, size)?;
            let mut out = std::fs::File::create_new(&target).map_err(|e| io_error(&target, e))?;
            io::copy(&mut (&mut entry).take(size), &mut out).map_err(corrupt)?;
        } else if kind.is_symlink() {
            let link = entry
                .link_name_bytes()
                .ok_or_else(|| invalid_archive(chart, format!("symlink {path:?} has no target")))?;
            let link = std::str::from_utf8(&link)
                .map_err(|_| invalid_archive(chart, "a symlink target is not UTF-8"))?
                .to_owned();
            if link.starts_with('/') || resolve_inside(&rest[..rest.len() - 1], &link).is_none() {
                return Err(unsafe_archive(
                    chart,
                    format!("symlink {path:?} -> {link:?} leaves the chart"),
                ));
            }
            make_symlink(&link, &target)?;
            links.insert(target);
        } else if kind.is_hard_link() {
            let link = entry.link_name_bytes().ok_or_else(|| {
                invalid_archive(chart, format!("hard link {path:?} has no target"))
            })?;
            let link = std::str::from_utf8(&link)
                .map_err(|_| invalid_archive(chart, "a hard link target is not UTF-8"))?
                .to_owned();
            let link_parts = components(chart, &link).map_err(|_| {
                unsafe_archive(
                    chart,
                    format!("hard link {path:?} -> {link:?} leaves the chart"),
                )
            })?;
            match link_parts.split_first() {
                // Nor read through one: links are only checked once the archive is unpacked,
                // and a chain of them may lead anywhere meanwhile.
                Some((_, link_rest)) if goes_through_link(dest, link_rest, &links) => {
                    return Err(unsafe_archive(
                        chart,
                        format!("hard link {path:?} -> {link:?} goes through a link"),
                    ));
                }
                Some((link_top, link_rest))
                    if Some(*link_top) == top.as_deref() && !link_rest.is_empty() =>
                {
                    let source = link_rest.iter().fold(dest.to_path_buf(), |p, c| p.join(c));
                    let meta = source.symlink_metadata().map_err(|_| {
                        invalid_archive(
                            chart,
                            format!("hard link {path:?} -> {link:?}: target not found before it"),
                        )
                    })?;
                    if !meta.is_file() {
                        return Err(unsafe_archive(
                            chart,
                            format!("hard link {path:?} -> {link:?} is not to a regular file"),
                        ));
                    }
                    bytes = add_bytes(chart, limits, bytes, meta.len())?;
                    // A copy, not a link: the cache never shares inodes between entries.
                    std::fs::copy(&source, &target).map_err(|e| io_error(&target, e))?;
                }
                _ => {
                    return Err(unsafe_archive(
                        chart,
                        format!("hard link {path:?} -> {link:?} leaves the chart"),
                    ));
                }
            }
        } else if matches!(
            kind,
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo
        ) {
            return Err(unsafe_archive(
                chart,
                format!("entry {path:?} is a device or fifo"),
            ));
        } else {
            return Err(unsafe_archive(
                chart,
                format!("entry {path:?} has an unsupported type {kind:?}"),
            ));
        }
    }
    // Lexical checks cannot see what chains of links resolve to: resolve each one for real.
    let root = dest.canonicalize().map_err(|e| io_error(dest, e))?;
    // helm reads a chart through its links: what each one leads to is read again, so its
    // bytes count toward the limit as often as it is linked (else a few MiB linked thousands
    // of times would make helm read gigabytes). Sorted, so the error names the same link.
    let mut sorted: Vec<&PathBuf> = links.iter().collect();
    sorted.sort();
    let mut budget = Budget {
        chart,
        limits,
        bytes,
        entries: files,
    };
    for link in sorted {
        match link.canonicalize() {
            Ok(real) if real.starts_with(&root) => budget.count_through(link, 0)?,
            Ok(_) => {
                return Err(unsafe_archive(
                    chart,
                    format!(
                        "symlink {:?} resolves outside the chart",
                        relative(dest, link)
                    ),
                ));
            }
            Err(_) => {
                return Err(unsafe_archive(
                    chart,
                    format!(
                        "symlink {:?} points to nothing in the chart",
                        relative(dest, link)
                    ),
                ));
            }
        }
    }
    top.ok_or_else(|| invalid_archive(chart, "the archive is empty"))
}

/// Whether `parts` (a path below `dest`) passes through, or is, one of `links`.
fn goes_through_link(dest: &Path, parts: &[&str], links: &HashSet<PathBuf>) -> bool {
    let mut path = dest.to_path_buf();
    parts.iter().any(|part| {
        path.push(part);
        links.contains(&path)
    })
}

/// What the archive's entries cost so far, with what is read again through links added.
struct Budget<'a> {
    chart: &'a str,
    limits: &'a Limits,
    bytes: u64,
    entries: u64,
}

/// Links nested deeper than this are refused: helm would follow a loop for ever.
const MAX_LINK_DEPTH: usize = 16;

impl Budget<'_> {
    /// Adds what reading `path` (following links) costs: a file's size; a directory's
    /// entries, each counted. Bounded by the limits, so a loop of directory links fails fast.
    fn count_through(&mut self, path: &Path, depth: usize) -> Result<(), Error> {
        if depth > MAX_LINK_DEPTH {
            return Err(unsafe_archive(
                self.chart,
                format!(
                    "links nest more than {MAX_LINK_DEPTH} deep at {:?} (a loop of directory links?)",
                    path.display()
                ),
            ));
        }
        self.entries += 1;
        if self.entries > self.limits.max_files {
            return Err(Error::LimitExceeded {
                what: format!(
                    "number of entries in chart {:?}, counting those read through links",
                    self.chart
                ),
                limit: self.limits.max_files,
                setting: "maxFiles",
            });
        }
        let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
        if meta.is_file() {
            self.bytes = add_bytes(self.chart, self.limits, self.bytes, meta.len())?;
            return Ok(());
        }
        if meta.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| io_error(path, e))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .map_err(|e| io_error(path, e))?;
            children.sort();
            for child in children {
                self.count_through(&child, depth + 1)?;
            }
        }
        Ok(())
    }
}

fn relative(dest: &Path, path: &Path) -> String {
    path.strip_prefix(dest)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn add_bytes(chart: &str, limits: &Limits, total: u64, size: u64) -> Result<u64, Error> {
    let total = total.saturating_add(size);
    if total > limits.max_unpacked_bytes {
        return Err(Error::LimitExceeded {
            what: format!("unpacked chart {chart:?}"),
            limit: limits.max_unpacked_bytes,
            setting: "maxUnpackedBytes",
        });
    }
    Ok(total)
}

#[cfg(unix)]
pub(crate) fn make_symlink(link: &str, target: &Path) -> Result<(), Error> {
    std::os::unix::fs::symlink(link, target).map_err(|e| io_error(target, e))
}

#[cfg(not(unix))]
pub(crate) fn make_symlink(_link: &str, target: &Path) -> Result<(), Error> {
    Err(io_error(
        target,
        io::Error::other("symlinks in charts are only supported on unix"),
    ))
}

/// Checks a packaged chart (`.tgz`) from anyone, as every fetched archive is checked: within
/// `limits`, only regular files, directories and links that stay inside the chart, one
/// top-level directory named as `Chart.yaml` names the chart, a version. Unpacks into a
/// temporary directory removed on return. For servers accepting pushed charts
/// (`upstart charts serve`'s publish endpoint).
pub fn check_archive(archive: &[u8], limits: &Limits) -> Result<ChartMeta, Error> {
    let Some(chart) = top_level_name(archive) else {
        return Err(invalid_archive(
            "?",
            "not a .tgz whose first entry is a directory named like a chart (helm package makes one)",
        ));
    };
    let scratch = tempfile::tempdir().map_err(|e| io_error(&std::env::temp_dir(), e))?;
    unpack(archive, &chart, limits, &scratch.path().join(&chart))
}

/// The top-level directory of a chart archive (from its first entry), when it is a valid
/// chart name. [`unpack`] checks the whole archive later; this only says what to expect.
pub(crate) fn top_level_name(archive: &[u8]) -> Option<String> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    for entry in tar.entries().ok()? {
        let entry = entry.ok()?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let raw = entry.path_bytes();
        let path = std::str::from_utf8(&raw).ok()?;
        let first = path.split('/').find(|p| !p.is_empty() && *p != ".")?;
        return crate::reference::valid_chart_name(first).then(|| first.to_owned());
    }
    None
}

/// Reads `Chart.yaml` from an unpacked chart directory (never through a symlink).
pub(crate) fn read_chart_yaml(chart: &str, dir: &Path) -> Result<ChartMeta, Error> {
    let path = dir.join("Chart.yaml");
    match path.symlink_metadata() {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(invalid_archive(chart, "Chart.yaml is not a regular file")),
        Err(_) => return Err(invalid_archive(chart, "Chart.yaml is missing")),
    }
    let text = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
    let parsed: ChartYaml = serde_yaml_ng::from_slice(&text)
        .map_err(|e| invalid_archive(chart, format!("Chart.yaml: {e}")))?;
    let name = parsed
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid_archive(chart, "Chart.yaml has no name"))?;
    let version = parsed
        .version
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid_archive(chart, "Chart.yaml has no version"))?;
    Ok(ChartMeta { name, version })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    #[test]
    fn link_targets_resolve_lexically_within_the_chart() {
        assert_eq!(
            resolve_inside(&["templates"], "../values.yaml"),
            Some(vec!["values.yaml".to_owned()])
        );
        assert_eq!(resolve_inside(&["templates"], "../../x"), None);
        assert_eq!(resolve_inside(&[], ".."), None);
    }

    #[test]
    fn absolute_and_parent_paths_are_unsafe() {
        assert!(components("c", "/etc/passwd").is_err());
        assert!(components("c", "c/../../x").is_err());
        assert_eq!(
            components("c", "./c//templates/a.yaml").unwrap(),
            vec!["c", "templates", "a.yaml"]
        );
    }
}
