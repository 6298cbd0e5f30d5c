//! The fuzzing entry point of chart archives (fuzz/fuzz_targets/chart_archive.rs), also replayed
//! over the committed corpus by e2e/tests/fuzz_corpus.rs: any archive is unpacked within the
//! limits or refused, and nothing outside the chart directory is created, changed or linked to.

use std::io::Write;
use std::path::Path;

use crate::Limits;
use crate::archive::unpack;

/// Limits small enough that bombs are found in a fuzzer's time.
pub fn limits() -> Limits {
    Limits {
        max_archive_bytes: 1 << 20,
        max_unpacked_bytes: 4 << 20,
        max_files: 200,
        ..Limits::default()
    }
}

/// The content of a file beside the chart directory: no file of the chart may ever hold it.
const SENTINEL: &[u8] = b"outside the chart: never to be read";

/// Unpacks `data` as chart `mychart`: a gzip stream as it is, anything else gzipped first (so
/// that the fuzzer mutates tar headers without breaking the gzip checksum).
pub fn chart_archive(data: &[u8]) {
    let archive = if data.starts_with(&[0x1f, 0x8b]) {
        data.to_vec()
    } else {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("writing to memory");
        encoder.finish().expect("writing to memory")
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sentinel = dir.path().join("sentinel");
    std::fs::write(&sentinel, SENTINEL).expect("writing the sentinel");
    let dest = dir.path().join("chart");
    let limits = limits();
    let result = unpack(&archive, "mychart", &limits, &dest);

    let mut outside: Vec<String> = std::fs::read_dir(dir.path())
        .expect("listing the temporary directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    outside.sort();
    assert_eq!(
        outside,
        ["chart", "sentinel"],
        "an entry was written beside the chart"
    );
    assert_eq!(
        std::fs::read(&sentinel).expect("reading the sentinel"),
        SENTINEL,
        "a file beside the chart was changed"
    );
    if dest.exists() {
        assert_nothing_read_from_outside(&dest);
    }
    if result.is_ok() {
        let root = dest.canonicalize().expect("the chart directory");
        let mut tally = Tally::default();
        tally.walk(&root, &dest);
        assert!(
            tally.bytes <= limits.max_unpacked_bytes,
            "{} bytes unpacked",
            tally.bytes
        );
        assert!(
            tally.entries <= limits.max_files,
            "{} entries unpacked",
            tally.entries
        );
    }
}

/// Whether any regular file under `dir` (links not followed) is a copy of the sentinel, even
/// when the unpack failed and its directory is to be removed.
fn assert_nothing_read_from_outside(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("listing the chart") {
        let path = entry.expect("an entry").path();
        let meta = path.symlink_metadata().expect("an entry's metadata");
        if meta.is_dir() {
            assert_nothing_read_from_outside(&path);
        } else if meta.is_file() {
            assert_ne!(
                std::fs::read(&path).expect("reading an unpacked file"),
                SENTINEL,
                "{} was copied from outside the chart",
                path.display()
            );
        }
    }
}

#[derive(Default)]
struct Tally {
    bytes: u64,
    entries: u64,
}

impl Tally {
    /// Counts the regular files and checks that every link resolves inside `root`.
    fn walk(&mut self, root: &Path, dir: &Path) {
        for entry in std::fs::read_dir(dir).expect("listing the chart") {
            let path = entry.expect("an entry").path();
            self.entries += 1;
            let meta = path.symlink_metadata().expect("an entry's metadata");
            if meta.file_type().is_symlink() {
                let real = path.canonicalize().expect("a kept link resolves");
                assert!(
                    real.starts_with(root),
                    "link {} resolves outside the chart",
                    path.display()
                );
            } else if meta.is_dir() {
                self.walk(root, &path);
            } else {
                assert!(meta.is_file(), "{} is not a regular file", path.display());
                self.bytes += meta.len();
            }
        }
    }
}
