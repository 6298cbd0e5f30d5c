//! The operator image (`scripts/image`): the three operators run from the image's own
//! filesystem, configured as in a pod, bring the example environment to Ready against the local
//! control plane over HTTPS; two builds of the same inputs give the same digest; `--push` lands
//! the image, digest unchanged, in a registry (Debian's `docker-registry`).
//!
//! No container runtime runs here (`podman run` / crun cannot set rlimits in this sandbox), so
//! the test plays the runtime: it unpacks the image with umoci, and starts each operator with
//! `unshare --mount --pid --fork` (a mount and PID namespace of its own), where the pod's mounts
//! are bind-mounted into the image's root filesystem — the ServiceAccount token, CA and
//! namespace at `/var/run/secrets/kubernetes.io/serviceaccount`, the repository configuration at
//! `/etc/upstart`, emptyDirs at `/tmp` and the chart cache — and then `chroot`s into it as user
//! 65532. The operators get the in-cluster environment only (`KUBERNETES_SERVICE_HOST/PORT`,
//! no kubeconfig) and tokens the control plane issued for their ServiceAccounts.
//!
//! That needs root (namespaces, mounts, chroot). Without it the smoke test prints
//! `SKIPPED: …` with the reason and passes: see e2e/README.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Api;
use kube::api::{ListParams, PostParams};
use upstart_api::v1alpha1::{EnvironmentPhase, UpstartEnvironment};
use upstart_local_cluster::{
    CHARTS_ALIAS, FIELD_MANAGER, LocalCluster, LocalClusterOptions, OperatorSet, apply_files,
};

const OPERATORS: [&str; 3] = [
    "upstart-helmrelease-operator",
    "upstart-service-operator",
    "upstart-environment-operator",
];
/// The namespace the chart is installed in, here only as the ServiceAccounts' namespace.
const SYSTEM_NAMESPACE: &str = "upstart-system";
const ENVIRONMENT: &str = "my-environment-name";
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The mount point of a pod's ServiceAccount files.
const SERVICE_ACCOUNT_DIR: &str = "var/run/secrets/kubernetes.io/serviceaccount";
/// The chart's `--cache-dir` (an emptyDir in the pod).
const CACHE_DIR: &str = "var/cache/upstart/charts";
/// The image's user (the chart's `runAsUser`/`runAsGroup`).
const IMAGE_USER: u32 = 65532;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The cargo target directory this test was built into (`…/target`): the test binary is
/// `target/debug/deps/image_smoke-HASH`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The `key: value` lines scripts/image prints.
fn image_report(output: &Output) -> BTreeMap<String, String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// scripts/image with a fixed SOURCE_DATE_EPOCH.
fn image_command(target: &Path, epoch: &str) -> Command {
    let mut command = Command::new(workspace().join("scripts/image"));
    command
        .env("CARGO_TARGET_DIR", target)
        .env("SOURCE_DATE_EPOCH", epoch);
    command
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn tool(name: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| {
        panic!("{name} is needed to check the image: run scripts/bootstrap-tools as root (it installs umoci and skopeo with apt-get), or apt-get install {name}")
    })
}

/// Why the operators cannot be run from the image here, if they cannot: the namespaces,
/// mounts and chroot need root.
fn cannot_run_images() -> Option<String> {
    for name in ["unshare", "chroot", "mount", "sh"] {
        if on_path(name).is_none() {
            return Some(format!("{name} is not on PATH"));
        }
    }
    let probe = Command::new("unshare")
        .args(["--mount", "--pid", "--fork", "chroot", "/", "true"])
        .stderr(Stdio::piped())
        .output();
    match probe {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "`unshare --mount --pid --fork chroot / true` is not permitted here (root is needed): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(e) => Some(format!("unshare could not be started: {e}")),
    }
}

/// Stand-ins for the three operator binaries in `target/debug` of a scratch target directory.
fn stand_in_binaries(target: &Path, text: &str) {
    let debug = target.join("debug");
    std::fs::create_dir_all(&debug).unwrap();
    for binary in OPERATORS {
        let path = debug.join(binary);
        std::fs::write(&path, format!("#!/bin/false {binary} {text}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn two_builds_of_the_same_inputs_give_the_same_image() {
    let target = tempfile::tempdir().unwrap();
    stand_in_binaries(target.path(), "v1");
    let first = run(image_command(target.path(), "1700000000").args(["--profile", "dev"]));
    let first = image_report(&first);
    let archive = PathBuf::from(&first["archive"]);
    assert_eq!(
        archive,
        target.path().join(format!(
            "image/upstart-operators-{}-dev.oci.tar",
            env!("CARGO_PKG_VERSION")
        )),
        "the archive is target/image/upstart-operators-APPVERSION-dev.oci.tar"
    );
    assert!(first["digest"].starts_with("sha256:"), "{first:?}");
    let first_bytes = std::fs::read(&archive).unwrap();

    // Other mtimes on disk, same SOURCE_DATE_EPOCH and contents: the same bytes.
    std::thread::sleep(Duration::from_millis(1100));
    stand_in_binaries(target.path(), "v1");
    let second = image_report(&run(
        image_command(target.path(), "1700000000").args(["--profile", "dev"])
    ));
    assert_eq!(first["digest"], second["digest"]);
    assert!(
        std::fs::read(&archive).unwrap() == first_bytes,
        "the archive is not reproducible"
    );

    // Another binary: another digest.
    stand_in_binaries(target.path(), "v2");
    let third = image_report(&run(
        image_command(target.path(), "1700000000").args(["--profile", "dev"])
    ));
    assert_ne!(first["digest"], third["digest"]);

    // skopeo reads the archive and finds the image's settings.
    let inspected = run(Command::new(tool("skopeo")).args([
        "--insecure-policy",
        "inspect",
        "--config",
        &format!("oci-archive:{}", archive.display()),
    ]));
    let config: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
}

#[test]
fn bad_arguments_are_refused_with_what_to_do() {
    let output = Command::new(workspace().join("scripts/image"))
        .args(["--profile", "debug"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("unknown profile 'debug': use --profile release or --profile dev")
    );
    let output = Command::new(workspace().join("scripts/image"))
        .args(["--push", "upstart-operators:latest"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not REGISTRY/REPO:TAG"));

    let target = tempfile::tempdir().unwrap();
    let output = image_command(target.path(), "1700000000")
        .args(["--profile", "dev"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(
            "upstart-helmrelease-operator is missing: build it first (cargo build -p upstart-helmrelease-operator)"
        ),
        "{output:?}"
    );
}

/// A docker-registry (CNCF distribution) on a free loopback port; killed when dropped.
struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start() -> Registry {
        let binary = tool("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .unwrap();
        let mut registry = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = registry.child.try_wait().unwrap() {
                panic!("docker-registry exited with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen within 20s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }
}

#[test]
fn the_image_is_pushed_with_its_digest() {
    let registry = Registry::start();
    let target = tempfile::tempdir().unwrap();
    stand_in_binaries(target.path(), "push");
    let reference = format!(
        "127.0.0.1:{}/upstart/upstart-operators:0.1.0",
        registry.port
    );
    let pushed = image_report(&run(image_command(target.path(), "1700000000").args([
        "--profile",
        "dev",
        "--push",
        &reference,
        "--insecure",
    ])));
    assert_eq!(pushed["pushed"], reference);
    let manifest = run(Command::new(tool("skopeo")).args([
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{reference}"),
    ]));
    let digest = format!(
        "sha256:{}",
        sha256_hex(&manifest.stdout).expect("sha256sum is on PATH")
    );
    assert_eq!(
        digest, pushed["digest"],
        "the registry serves the manifest that was built"
    );
}

fn sha256_hex(bytes: &[u8]) -> Option<String> {
    use std::io::Write as _;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(bytes).ok()?;
    let output = child.wait_with_output().ok()?;
    String::from_utf8(output.stdout)
        .ok()?
        .split_whitespace()
        .next()
        .map(str::to_string)
}

/// What a pod of one operator gets, on the host: directories bind-mounted into the image's
/// root filesystem in the operator's own mount namespace.
struct Pod {
    name: &'static str,
    service_account: PathBuf,
    tmp: PathBuf,
    cache: PathBuf,
    log: PathBuf,
}

fn mkdir_owned_by_image_user(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::os::unix::fs::chown(path, Some(IMAGE_USER), Some(IMAGE_USER)).unwrap();
}

/// Starts `pod`'s operator from `rootfs` as the container runtime would.
fn start_operator(
    rootfs: &Path,
    config_dir: &Path,
    pod: &Pod,
    image_env: &[String],
    api_port: u16,
) -> Running {
    let mut args: Vec<String> = vec![
        // The chart's --metrics-addr=0.0.0.0:8080: the three share the host's network here.
        "--metrics-addr=127.0.0.1:0".into(),
        "--log-format=json".into(),
        // The chart's default: leader election on. Without --leader-election-namespace the
        // Lease goes to the namespace of the mounted ServiceAccount.
        "--leader-elect=true".into(),
        "--lease-duration=15s".into(),
        "--renew-deadline=10s".into(),
        "--retry-period=2s".into(),
        "--catalog-namespace=upstart-catalog".into(),
    ];
    if pod.name == "upstart-helmrelease-operator" {
        args.extend([
            // As the chart: `helm`, found by the operator in the image's /usr/bin.
            "--helm-path=helm".into(),
            "--repository-config=/etc/upstart/repositories.yaml".into(),
            format!("--credentials-namespace={SYSTEM_NAMESPACE}"),
            format!("--cache-dir=/{CACHE_DIR}"),
        ]);
    }
    // The runtime's part, with the host's tools, before the operator starts: the pod's mounts.
    let setup = r#"set -e
root="$1" service_account="$2" tmp="$3" cache="$4" config="$5" binary="$6"
shift 6
mount --bind /dev "$root/dev"
mount --bind "$service_account" "$root/var/run/secrets/kubernetes.io/serviceaccount"
mount --bind "$tmp" "$root/tmp"
mount --bind "$cache" "$root/var/cache/upstart/charts"
mount --bind -o ro "$config" "$root/etc/upstart"
exec chroot --userspec=65532:65532 "$root" "$binary" "$@"
"#;
    let tools_path = std::env::var("PATH").unwrap_or_default();
    let mut command = tokio::process::Command::new(on_path("unshare").unwrap());
    command
        .args(["--mount", "--pid", "--fork", "--kill-child"])
        .arg(format!("--mount-proc={}", rootfs.join("proc").display()))
        .arg(on_path("sh").unwrap())
        .args(["-c", setup, "setup"])
        .arg(rootfs)
        .arg(&pod.service_account)
        .arg(&pod.tmp)
        .arg(&pod.cache)
        .arg(config_dir)
        .arg(format!("/usr/bin/{}", pod.name))
        .args(&args)
        .env_clear()
        // Only the setup script uses the host's PATH; chroot then gets the image's.
        .env("PATH", &tools_path)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&pod.log).unwrap())
        .stderr(std::fs::File::create(pod.log.with_extension("stderr")).unwrap())
        .kill_on_drop(true);
    for variable in image_env {
        if let Some((key, value)) = variable.split_once('=') {
            if key == "PATH" {
                continue;
            }
            command.env(key, value);
        }
    }
    command
        // What kubelet sets for a pod; no POD_NAMESPACE, so the namespace file is what tells
        // the operator its namespace.
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", api_port.to_string())
        .env("POD_NAME", format!("{}-0", pod.name))
        .env("RUST_LOG", "info");
    Running {
        unshare: command.spawn().unwrap(),
    }
}

/// An operator started by [`start_operator`]; killed, with its PID namespace, when dropped
/// (also when the test fails).
struct Running {
    unshare: tokio::process::Child,
}

impl Running {
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.unshare.try_wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The operator is unshare's child and the PID namespace's init: killing it ends the
        // namespace. unshare's --kill-child does not reach it, since chroot --userspec changes
        // credentials, which clears the parent-death signal.
        if let Some(pid) = self.unshare.id() {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            for child in children.split_whitespace() {
                let _ = Command::new("sh")
                    .args(["-c", "kill -KILL \"$1\"", "kill", child])
                    .status();
            }
        }
        let _ = self.unshare.start_kill();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_run_from_the_image_and_the_example_environment_becomes_ready() {
    if let Some(reason) = cannot_run_images() {
        eprintln!("SKIPPED: the operators cannot be run from the image's filesystem: {reason}");
        return;
    }
    let umoci = tool("umoci");

    step("the image, from the debug binaries the tests built");
    let target = target_dir();
    let debug = target.join("debug");
    if OPERATORS.iter().any(|b| !debug.join(b).is_file()) {
        let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cargo.arg("build").arg("--bins");
        for binary in OPERATORS {
            cargo.args(["-p", binary]);
        }
        run(cargo.current_dir(workspace()));
    }
    let built = image_report(&run(
        image_command(&target, "1700000000").args(["--profile", "dev"])
    ));
    eprintln!("image: {built:?}");

    step("unpacked with umoci, as a runtime would");
    let scratch = tempfile::tempdir().unwrap();
    let layout = scratch.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&built["archive"])
        .arg("-C")
        .arg(&layout));
    let bundle = scratch.path().join("bundle");
    run(Command::new(&umoci)
        .arg("unpack")
        .arg("--image")
        .arg(format!(
            "{}:{}",
            layout.display(),
            env!("CARGO_PKG_VERSION")
        ))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    let runtime_config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime_config["process"]["user"]["uid"], IMAGE_USER);
    let image_env: Vec<String> =
        serde_json::from_value(runtime_config["process"]["env"].clone()).unwrap();
    check_contents(&rootfs);

    step("the local control plane over HTTPS, charts served, ServiceAccount tokens on");
    let cluster = LocalCluster::start(LocalClusterOptions {
        https_port: Some(0),
        charts_dir: Some(workspace().join("charts")),
        operators: OperatorSet::none(),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap();
    let endpoint = cluster.endpoint().unwrap().clone();
    endpoint.enable_service_account_tokens();
    let client = cluster.client().clone();
    let charts = cluster
        .chart_repositories()
        .iter()
        .find(|r| r.alias == CHARTS_ALIAS)
        .unwrap()
        .url
        .clone();

    step("a ServiceAccount and a token per operator, mounted as in a pod");
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": SYSTEM_NAMESPACE}}))
                .unwrap(),
        )
        .await
        .unwrap();
    // TokenRequest is served on the HTTPS endpoint, where tokens are used.
    let accounts: Api<ServiceAccount> =
        Api::namespaced(endpoint.client().await.unwrap(), SYSTEM_NAMESPACE);
    let config_dir = scratch.path().join("repositories");
    std::fs::create_dir(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("repositories.yaml"),
        format!("repositories:\n  {CHARTS_ALIAS}:\n    url: {charts}\nindexTtl: \"0s\"\n"),
    )
    .unwrap();
    for dir in [SERVICE_ACCOUNT_DIR, CACHE_DIR, "etc/upstart", "dev", "proc"] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    let mut pods = Vec::new();
    for name in OPERATORS {
        accounts
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap(),
            )
            .await
            .unwrap();
        let issued = accounts
            .create_token_request(
                name,
                &PostParams::default(),
                &TokenRequest {
                    spec: TokenRequestSpec {
                        expiration_seconds: Some(3600),
                        ..TokenRequestSpec::default()
                    },
                    ..TokenRequest::default()
                },
            )
            .await
            .unwrap();
        let pod = Pod {
            name,
            service_account: scratch.path().join(name).join("serviceaccount"),
            tmp: scratch.path().join(name).join("tmp"),
            cache: scratch.path().join(name).join("cache"),
            log: scratch.path().join(name).join("log"),
        };
        std::fs::create_dir_all(&pod.service_account).unwrap();
        std::fs::write(
            pod.service_account.join("token"),
            issued.status.unwrap().token,
        )
        .unwrap();
        std::fs::write(pod.service_account.join("ca.crt"), endpoint.ca_pem()).unwrap();
        std::fs::write(pod.service_account.join("namespace"), SYSTEM_NAMESPACE).unwrap();
        mkdir_owned_by_image_user(&pod.tmp);
        std::fs::set_permissions(&pod.tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        mkdir_owned_by_image_user(&pod.cache);
        pods.push(pod);
    }

    step("the three operators, from the image, in-cluster configuration only");
    let mut running: Vec<Running> = pods
        .iter()
        .map(|pod| start_operator(&rootfs, &config_dir, pod, &image_env, endpoint.addr.port()))
        .collect();

    step("the example catalog and environment applied");
    apply_files(
        &client,
        &[
            workspace().join("examples/services/example-service.yaml"),
            workspace().join("examples/services/another-upstart-service.yaml"),
        ],
        FIELD_MANAGER,
        cluster.catalog_namespace(),
    )
    .await
    .unwrap();
    apply_files(
        &client,
        &[workspace().join("examples/environment.yaml")],
        FIELD_MANAGER,
        "default",
    )
    .await
    .unwrap();

    step("the environment becomes Ready");
    let environments: Api<UpstartEnvironment> = Api::all(client.clone());
    let deadline = Instant::now() + READY_TIMEOUT;
    let outcome = loop {
        for (pod, operator) in pods.iter().zip(running.iter_mut()) {
            if let Some(status) = operator.exited() {
                break_with_logs(&pods, &format!("{} exited with {status}", pod.name));
            }
        }
        let status = environments
            .get_opt(ENVIRONMENT)
            .await
            .unwrap()
            .and_then(|e| e.status);
        if status.as_ref().and_then(|s| s.phase) == Some(EnvironmentPhase::Ready) {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(format!("the environment is not Ready: {status:?}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if let Err(why) = outcome {
        break_with_logs(&pods, &why);
    }

    step("each operator took its Lease in the namespace of its mounted ServiceAccount");
    let leases: Vec<String> = Api::<Lease>::namespaced(client.clone(), SYSTEM_NAMESPACE)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|l| l.metadata.name)
        .collect();
    for name in OPERATORS {
        assert!(
            leases.iter().any(|l| l == name),
            "no Lease {name} in {SYSTEM_NAMESPACE}: {leases:?}"
        );
    }

    drop(running);
    cluster.shutdown().await;
}

fn step(what: &str) {
    eprintln!("==> {what}");
}

/// Fails the test with `why` and the end of each operator's log.
fn break_with_logs(pods: &[Pod], why: &str) -> ! {
    let logs: Vec<String> = pods
        .iter()
        .map(|pod| {
            format!(
                "--- {} (stdout)\n{}\n--- {} (stderr)\n{}",
                pod.name,
                tail(&pod.log, 30),
                pod.name,
                tail(&pod.log.with_extension("stderr"), 30)
            )
        })
        .collect();
    panic!("{why}\n{}", logs.join("\n"));
}

/// The image holds the operators, helm, their libraries, the CA bundle and the user files,
/// nothing else: no shell, no package manager.
fn check_contents(rootfs: &Path) {
    let mut files = Vec::new();
    let mut pending = vec![rootfs.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else {
                files.push(
                    path.strip_prefix(rootfs)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    files.sort();
    let (libraries, rest): (Vec<&String>, Vec<&String>) = files
        .iter()
        .partition(|f| (f.starts_with("lib/") || f.starts_with("lib64/")) && f.contains(".so"));
    assert!(
        libraries.iter().any(|l| l.contains("libc.so")),
        "{libraries:?}"
    );
    assert_eq!(
        rest,
        [
            "etc/group",
            "etc/nsswitch.conf",
            "etc/passwd",
            "etc/ssl/certs/ca-certificates.crt",
            "usr/bin/helm",
            "usr/bin/upstart-environment-operator",
            "usr/bin/upstart-helmrelease-operator",
            "usr/bin/upstart-service-operator",
        ]
    );
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
}
