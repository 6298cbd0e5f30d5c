//! Packaging a chart directory as a deterministic `NAME-VERSION.tgz`, shared by the chart
//! sources (a `file:` chart directory is packaged before it is cached) and the local chart
//! repository (which serves the packages): its own crate so that neither depends on the other.
//!
//! The archive holds the chart's files (sorted, regular files only) under a top-level `NAME/`
//! folder, as `helm package` lays them out, with fixed owner, mode and time so that the same
//! content always gives the same bytes and so the same digest.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use flate2::Compression;
use flate2::GzBuilder;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use sha2::{Digest as _, Sha256};

/// What can go wrong while reading and packaging a chart directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid Chart.yaml: {message}")]
    InvalidChart { path: PathBuf, message: String },
    #[error("{path}: invalid .helmignore: {source}")]
    Helmignore {
        path: PathBuf,
        source: ignore::Error,
    },
    #[error(
        "{path}: a symbolic link leading outside the chart directory (to {target}); charts may link only to their own files: copy the file into the chart instead"
    )]
    LinkLeavesChart { path: PathBuf, target: PathBuf },
    #[error("packaging {path}: {source}")]
    Package {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One packaged chart.
#[derive(Debug, Clone)]
pub struct PackagedChart {
    /// The chart's name, from `Chart.yaml`.
    pub name: String,
    /// The chart's version, from `Chart.yaml`.
    pub version: String,
    /// The directory the chart was read from.
    pub dir: PathBuf,
    /// The `.tgz` archive.
    pub archive: Vec<u8>,
    /// Hex sha256 of `archive`.
    pub digest: String,
    /// Newest modification time of the files in the archive: the entry's `created`.
    pub modified: SystemTime,
    /// `Chart.yaml` as a YAML mapping, copied into the index entry.
    pub metadata: serde_yaml_ng::Mapping,
}

impl PackagedChart {
    /// The archive's file name, `NAME-VERSION.tgz`.
    pub fn file_name(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }
}

/// Helm ignores hidden files in `templates/` whatever `.helmignore` says.
const DEFAULT_IGNORE: &str = "templates/.?*";

/// Hex sha256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Reads `dir/Chart.yaml`, collects the files `.helmignore` keeps and packages them.
pub fn package_chart(dir: &Path) -> Result<PackagedChart, Error> {
    let chart_yaml = dir.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).map_err(|source| Error::Read {
        path: chart_yaml.clone(),
        source,
    })?;
    let metadata: serde_yaml_ng::Mapping =
        serde_yaml_ng::from_str(&text).map_err(|e| Error::InvalidChart {
            path: chart_yaml.clone(),
            message: e.to_string(),
        })?;
    let field = |key: &str| -> Result<String, Error> {
        match metadata.get(key) {
            Some(serde_yaml_ng::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(serde_yaml_ng::Value::Number(n)) => Ok(n.to_string()),
            _ => Err(Error::InvalidChart {
                path: chart_yaml.clone(),
                message: format!("`{key}` is missing or not a string"),
            }),
        }
    };
    let name = field("name")?;
    let version = field("version")?;
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(Error::InvalidChart {
            path: chart_yaml,
            message: format!("chart name {name:?} must not contain path segments"),
        });
    }
    if semver::Version::parse(version.strip_prefix('v').unwrap_or(&version)).is_err() {
        return Err(Error::InvalidChart {
            path: chart_yaml,
            message: format!("version {version:?} is not a semantic version"),
        });
    }

    let ignore = helmignore(dir)?;
    let real_root = dir.canonicalize().map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    collect_files(dir, &real_root, dir, &ignore, &mut files)?;
    files.sort();

    let mut modified = SystemTime::UNIX_EPOCH;
    let gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let package_err = |source| Error::Package {
        path: dir.to_path_buf(),
        source,
    };
    for rel in &files {
        let path = dir.join(rel);
        let read_err = |source| Error::Read {
            path: path.clone(),
            source,
        };
        let data = std::fs::read(&path).map_err(read_err)?;
        if let Ok(t) = std::fs::metadata(&path).and_then(|m| m.modified()) {
            modified = modified.max(t);
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let archive_path = format!("{name}/{}", slash_path(rel));
        tar.append_data(&mut header, archive_path, data.as_slice())
            .map_err(package_err)?;
    }
    let gz = tar.into_inner().map_err(package_err)?;
    let mut archive = gz.finish().map_err(package_err)?;
    archive.flush().map_err(package_err)?;
    let digest = sha256_hex(&archive);
    Ok(PackagedChart {
        name,
        version,
        dir: dir.to_path_buf(),
        archive,
        digest,
        modified,
        metadata,
    })
}

fn helmignore(dir: &Path) -> Result<Gitignore, Error> {
    let mut builder = GitignoreBuilder::new(dir);
    let file = dir.join(".helmignore");
    if file.is_file()
        && let Some(source) = builder.add(&file)
    {
        return Err(Error::Helmignore { path: file, source });
    }
    builder
        .add_line(None, DEFAULT_IGNORE)
        .and_then(|b| b.build())
        .map_err(|source| Error::Helmignore {
            path: dir.join(".helmignore"),
            source,
        })
}

/// Collects the paths (relative to `root`) of the regular files under `dir` that `ignore`
/// keeps. Symbolic links to files are followed when they stay inside the chart (`real_root`
/// is its canonical path) and refused otherwise, so a chart cannot carry a file of the machine
/// it is packaged on; links to directories are skipped, so a link cannot make the walk loop.
fn collect_files(
    root: &Path,
    real_root: &Path,
    dir: &Path,
    ignore: &Gitignore,
    out: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    let read_err = |source| Error::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let file_type = entry.file_type().map_err(read_err)?;
        let is_dir = file_type.is_dir();
        if ignore
            .matched_path_or_any_parents(&path, is_dir)
            .is_ignore()
        {
            continue;
        }
        // A dangling link is skipped below, as before.
        if file_type.is_symlink()
            && let Ok(target) = path.canonicalize()
            && !target.starts_with(real_root)
        {
            return Err(Error::LinkLeavesChart { path, target });
        }
        if is_dir {
            collect_files(root, real_root, &path, ignore, out)?;
        } else if file_type.is_file() || (file_type.is_symlink() && path.is_file()) {
            let rel = path
                .strip_prefix(root)
                .expect("walked paths are under the chart root")
                .to_path_buf();
            out.push(rel);
        } else {
            tracing::debug!(path = %path.display(), "skipping non-file entry in chart");
        }
    }
    Ok(())
}

fn slash_path(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn chart(dir: &Path) {
        write(
            dir,
            "Chart.yaml",
            "apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: \"4.5\"\n",
        );
        write(dir, "values.yaml", "replicas: 1\n");
        write(dir, "templates/cm.yaml", "kind: ConfigMap\n");
        write(dir, "templates/.hidden", "x");
        write(dir, "secret.txt", "x");
        write(dir, "docs/readme.md", "x");
        write(dir, ".helmignore", "# comment\nsecret.txt\ndocs/\n");
    }

    fn entries(archive: &[u8]) -> Vec<(String, String)> {
        let gz = flate2::read::GzDecoder::new(archive);
        let mut tar = tar::Archive::new(gz);
        let mut out = Vec::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            out.push((path, text));
        }
        out
    }

    #[cfg(unix)]
    #[test]
    fn links_inside_the_chart_are_packaged_and_links_leaving_it_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("chart");
        chart(&dir);
        std::os::unix::fs::symlink("../values.yaml", dir.join("templates/values-copy")).unwrap();
        let packaged = package_chart(&dir).unwrap();
        assert!(
            entries(&packaged.archive)
                .contains(&("demo/templates/values-copy".into(), "replicas: 1\n".into()))
        );

        write(tmp.path(), "outside.txt", "a file of the machine");
        std::os::unix::fs::symlink("../../outside.txt", dir.join("templates/stolen")).unwrap();
        let error = package_chart(&dir).unwrap_err();
        assert!(matches!(error, Error::LinkLeavesChart { .. }), "{error}");
        assert!(error.to_string().contains("templates/stolen"), "{error}");
    }

    #[test]
    fn archive_holds_the_kept_files_under_the_chart_name() {
        let tmp = tempfile::tempdir().unwrap();
        chart(tmp.path());
        let packaged = package_chart(tmp.path()).unwrap();
        let names: Vec<String> = entries(&packaged.archive)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            names,
            [
                "demo/.helmignore",
                "demo/Chart.yaml",
                "demo/templates/cm.yaml",
                "demo/values.yaml"
            ]
        );
        assert_eq!(packaged.file_name(), "demo-1.2.3.tgz");
    }

    #[test]
    fn same_content_gives_the_same_bytes_and_digest() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        chart(a.path());
        std::thread::sleep(std::time::Duration::from_millis(20));
        chart(b.path());
        let pa = package_chart(a.path()).unwrap();
        let pb = package_chart(b.path()).unwrap();
        assert_eq!(pa.archive, pb.archive);
        assert_eq!(pa.digest, sha256_hex(&pa.archive));
        assert_eq!(pa.digest.len(), 64);
    }

    #[test]
    fn changed_content_changes_the_digest() {
        let tmp = tempfile::tempdir().unwrap();
        chart(tmp.path());
        let before = package_chart(tmp.path()).unwrap();
        write(tmp.path(), "values.yaml", "replicas: 2\n");
        let after = package_chart(tmp.path()).unwrap();
        assert_ne!(before.digest, after.digest);
    }

    #[test]
    fn chart_without_version_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "Chart.yaml", "apiVersion: v2\nname: demo\n");
        let err = package_chart(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("`version`"), "{err}");
    }

    #[test]
    fn chart_name_with_path_segments_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "Chart.yaml",
            "apiVersion: v2\nname: ../evil\nversion: 1.0.0\n",
        );
        let err = package_chart(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("path segments"), "{err}");
    }

    #[test]
    fn non_semver_version_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "Chart.yaml",
            "apiVersion: v2\nname: demo\nversion: latest\n",
        );
        let err = package_chart(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("semantic version"), "{err}");
    }
}
