//! Replays every committed fuzz input (fuzz/corpus/TARGET and the crashes kept as regressions in
//! fuzz/regressions/TARGET) through the entry functions the cargo-fuzz targets call, so CI on
//! stable holds what fuzzing found: each input ends without a panic and within the bounds the
//! entry functions assert (output caps, YAML limits, nothing outside the release or the chart,
//! client errors rather than server errors).

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = fuzz.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            assert_ne!(kind, "corpus", "no corpus at {}", dir.display());
            continue;
        };
        files.extend(entries.map(|e| e.expect("a corpus entry").path()));
    }
    files.sort();
    files
}

/// Runs `entry` on every input of `target`, naming the input that panicked.
fn replay(target: &str, entry: fn(&[u8])) {
    let files = inputs(target);
    assert!(files.len() >= 10, "{target}: only {} seeds", files.len());
    for file in files {
        let data = std::fs::read(&file).expect("reading a corpus file");
        if std::panic::catch_unwind(|| entry(&data)).is_err() {
            panic!("{target}: {} fails its checks", file.display());
        }
    }
}

#[test]
fn every_expressions_input_substitutes_within_the_cap_or_is_refused() {
    replay("expressions", upstart_dag::fuzz_targets::expressions);
}

#[test]
fn every_yaml_values_input_converts_within_the_limits_or_is_refused() {
    replay(
        "yaml_values",
        upstart_release_engine::fuzz_targets::yaml_values,
    );
}

#[test]
fn every_manifest_input_plans_objects_only_inside_the_release_or_is_refused() {
    replay("manifest", upstart_release_engine::fuzz_targets::manifest);
}

#[test]
fn every_chart_archive_input_unpacks_inside_the_chart_within_the_limits_or_is_refused() {
    replay(
        "chart_archive",
        upstart_chart_source::fuzz_targets::chart_archive,
    );
}

#[test]
fn every_api_request_input_is_answered_without_a_server_error() {
    replay(
        "api_request",
        upstart_control_plane::fuzz_targets::api_request,
    );
}
