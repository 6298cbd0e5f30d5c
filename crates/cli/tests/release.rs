//! `scripts/release` packs the release binaries reproducibly: checked on stand-in binaries
//! (`UPSTART_RELEASE_SKIP_BUILD=1` in a scratch target directory), since a real release build
//! takes far longer than a test may.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use upstart_test_support::workspace_root;

const BINARIES: &[&str] = &[
    "upstart",
    "upstart-helmrelease-operator",
    "upstart-service-operator",
    "upstart-environment-operator",
];

fn release(target_dir: &Path, epoch: &str) -> std::process::Output {
    Command::new(workspace_root().join("scripts/release"))
        .env("CARGO_TARGET_DIR", target_dir)
        .env("UPSTART_RELEASE_SKIP_BUILD", "1")
        .env("SOURCE_DATE_EPOCH", epoch)
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap()
}

fn host_triple() -> String {
    let output = Command::new("rustc").arg("-vV").output().unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap()
}

#[test]
fn the_archive_holds_the_four_binaries_and_is_the_same_bytes_every_time() {
    let target = tempfile::tempdir().unwrap();
    let built = target.path().join("release");
    std::fs::create_dir_all(&built).unwrap();
    for binary in BINARIES {
        let path = built.join(binary);
        std::fs::write(&path, format!("#!/bin/sh\necho {binary}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let first = release(target.path(), "1700000000");
    assert!(first.status.success(), "{first:?}");
    let archive_path = String::from_utf8(first.stdout).unwrap().trim().to_owned();
    let name = format!("upstart-{}-{}", env!("CARGO_PKG_VERSION"), host_triple());
    assert_eq!(
        archive_path,
        target
            .path()
            .join(format!("dist/{name}.tar.gz"))
            .display()
            .to_string(),
        "the archive is named upstart-VERSION-TARGET.tar.gz (VERSION of the workspace)"
    );
    let first_bytes = std::fs::read(&archive_path).unwrap();

    // Other mtimes on disk, same SOURCE_DATE_EPOCH: the same bytes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    Command::new("touch")
        .args(BINARIES.iter().map(|b| built.join(b)))
        .status()
        .unwrap();
    let second = release(target.path(), "1700000000");
    assert!(second.status.success(), "{second:?}");
    assert!(
        std::fs::read(&archive_path).unwrap() == first_bytes,
        "the archive is not reproducible"
    );

    let listing = Command::new("tar")
        .args(["-tvzf", &archive_path])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    for binary in BINARIES {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!("{name}/bin/{binary}")))
            .unwrap_or_else(|| panic!("{binary} missing from the archive:\n{listing}"));
        assert!(
            line.starts_with("-rwxr-xr-x 0/0"),
            "owner 0/0 and mode 755: {line}"
        );
        assert!(
            line.contains("2023-11-14"),
            "mtime from SOURCE_DATE_EPOCH: {line}"
        );
    }
    assert!(listing.contains(&format!("{name}/README.md")), "{listing}");

    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(target.path().join("dist"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "SHA256SUMS does not match: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(
        String::from_utf8_lossy(&check.stdout).contains(&format!("{name}.tar.gz: OK")),
        "{check:?}"
    );
}

#[test]
fn a_missing_binary_is_named_with_what_to_do() {
    let target = tempfile::tempdir().unwrap();
    let output = release(target.path(), "1700000000");
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(
            "release/upstart is missing: run scripts/release without UPSTART_RELEASE_SKIP_BUILD"
        ),
        "{stderr}"
    );
}
