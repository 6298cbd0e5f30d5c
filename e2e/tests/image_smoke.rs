//! The operator image (`scripts/image`): the three operators run from the image's own
//! filesystem, configured as in a pod, bring the example environment to Ready against the local
//! control plane over HTTPS; two builds of the same inputs give the same digest; `--push` lands
//! the image, digest unchanged, in a registry (Debian's `docker-registry`). git from the image,
//! run in its root filesystem as the operator runs it (no PATH, no configuration), lists,
//! fetches and archives a chart from a loopback git http-backend; ssh starts.
//!
//! The chart proven with RBAC enforced: `helm install charts/upstart-operators` (the pinned helm)
//! into the control plane with RBAC on; a stand-in kubelet reads each Deployment's pod template
//! and runs its container from the image (command on the image's PATH, the chart's args and
//! env, fieldRefs resolved, emptyDirs and ConfigMaps mounted, a token of the pod's
//! ServiceAccount); the example environment becomes Ready, expires by its ttl and is torn down,
//! and no operator is refused anything on the way. The chart's ServiceAccounts are refused (403,
//! the API server's messages) what the operators do not need.
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

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use upstart_api::v1alpha1::{EnvironmentPhase, UpstartEnvironment};
use upstart_control_plane::Endpoint;
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

#[test]
fn the_image_is_pushed_with_its_digest() {
    let registry = upstart_test_support::registry::Registry::start();
    let target = tempfile::tempdir().unwrap();
    stand_in_binaries(target.path(), "push");
    let reference = format!("{}/upstart/upstart-operators:0.1.0", registry.host());
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

/// What the container runtime starts: a binary of the image with its arguments and
/// environment, and the pod's directories bind-mounted into the image's root filesystem in the
/// container's own mount namespace.
struct Container {
    /// For logs and failure messages.
    name: String,
    /// An absolute path inside the image.
    binary: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
    /// Its stdout; stderr goes beside it (`.stderr`).
    log: PathBuf,
}

/// A host directory mounted at `path` in the container.
struct Mount {
    host: PathBuf,
    path: String,
    read_only: bool,
}

fn mkdir_owned_by_image_user(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::os::unix::fs::chown(path, Some(IMAGE_USER), Some(IMAGE_USER)).unwrap();
}

/// An emptyDir on the host, writable by the image's user.
fn empty_dir(path: &Path) -> PathBuf {
    mkdir_owned_by_image_user(path);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o1777)).unwrap();
    path.to_path_buf()
}

/// A pod's ServiceAccount directory: `token`, `ca.crt`, `namespace`.
fn service_account_dir(dir: &Path, token: &str, ca: &str, namespace: &str) -> Mount {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("token"), token).unwrap();
    std::fs::write(dir.join("ca.crt"), ca).unwrap();
    std::fs::write(dir.join("namespace"), namespace).unwrap();
    Mount {
        host: dir.to_path_buf(),
        path: format!("/{SERVICE_ACCOUNT_DIR}"),
        read_only: true,
    }
}

/// A token for ServiceAccount `namespace/name`, as the kubelet requests one for a pod.
async fn service_account_token(endpoint: &Endpoint, namespace: &str, name: &str) -> String {
    // TokenRequest is served on the HTTPS endpoint, where tokens are used.
    Api::<ServiceAccount>::namespaced(endpoint.client().await.unwrap(), namespace)
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
        .unwrap()
        .status
        .unwrap()
        .token
}

/// Starts `container` from `rootfs` as the container runtime would, with the image's
/// environment and what kubelet sets for a pod.
fn start_container(
    rootfs: &Path,
    container: &Container,
    image_env: &[String],
    api_port: u16,
) -> Running {
    // The runtime's part, with the host's tools, before the binary starts: the pod's mounts.
    let setup = r#"set -e
root="$1"
shift
mount --bind /dev "$root/dev"
while [ "$1" != "--" ]; do
    if [ "$3" = ro ]; then
        mount --bind -o ro "$1" "$root$2"
    else
        mount --bind "$1" "$root$2"
    fi
    shift 3
done
shift
exec chroot --userspec=65532:65532 "$root" "$@"
"#;
    for mount in &container.mounts {
        std::fs::create_dir_all(rootfs.join(mount.path.trim_start_matches('/'))).unwrap();
    }
    for dir in ["dev", "proc"] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    let tools_path = std::env::var("PATH").unwrap_or_default();
    let mut command = tokio::process::Command::new(on_path("unshare").unwrap());
    command
        .args(["--mount", "--pid", "--fork", "--kill-child"])
        .arg(format!("--mount-proc={}", rootfs.join("proc").display()))
        .arg(on_path("sh").unwrap())
        .args(["-c", setup, "setup"])
        .arg(rootfs);
    for mount in &container.mounts {
        command
            .arg(&mount.host)
            .arg(&mount.path)
            .arg(if mount.read_only { "ro" } else { "rw" });
    }
    command
        .arg("--")
        .arg(&container.binary)
        .args(&container.args)
        .env_clear()
        // Only the setup script uses the host's PATH; chroot then gets the image's.
        .env("PATH", &tools_path)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&container.log).unwrap())
        .stderr(std::fs::File::create(container.log.with_extension("stderr")).unwrap())
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
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", api_port.to_string());
    for (key, value) in &container.env {
        command.env(key, value);
    }
    Running {
        unshare: command.spawn().unwrap(),
    }
}

/// A container started by [`start_container`]; killed, with its PID namespace, when dropped
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

/// The image built from the debug binaries the tests built, unpacked with umoci as a runtime
/// would: its root filesystem (under `scratch`) and its environment.
fn unpacked_image(scratch: &Path) -> (PathBuf, Vec<String>) {
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
    // The scenario tests run in parallel processes and build the same archive: one at a time,
    // until it is copied out.
    std::fs::create_dir_all(target.join("image")).unwrap();
    let lock = std::fs::File::create(target.join("image/.image-smoke.lock")).unwrap();
    lock.lock().unwrap();
    let built = image_report(&run(
        image_command(&target, "1700000000").args(["--profile", "dev"])
    ));
    eprintln!("image: {built:?}");

    step("unpacked with umoci, as a runtime would");
    let layout = scratch.join("layout");
    std::fs::create_dir(&layout).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&built["archive"])
        .arg("-C")
        .arg(&layout));
    drop(lock);
    let bundle = scratch.join("bundle");
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
    (rootfs, image_env)
}

/// Waits until `done` says the environment is where the test wants it, failing with the
/// operators' logs when one exits or time runs out.
async fn wait_for_environment(
    client: &kube::Client,
    containers: &[Container],
    running: &mut [Running],
    what: &str,
    done: impl Fn(Option<&UpstartEnvironment>) -> bool,
) {
    let environments: Api<UpstartEnvironment> = Api::all(client.clone());
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        for (container, operator) in containers.iter().zip(running.iter_mut()) {
            if let Some(status) = operator.exited() {
                break_with_logs(
                    containers,
                    &format!("{} exited with {status}", container.name),
                );
            }
        }
        let environment = environments.get_opt(ENVIRONMENT).await.unwrap();
        if done(environment.as_ref()) {
            return;
        }
        if Instant::now() > deadline {
            let status = environment.and_then(|e| e.status);
            break_with_logs(
                containers,
                &format!("{what}: not within {READY_TIMEOUT:?}: {status:?}"),
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn is_ready(environment: Option<&UpstartEnvironment>) -> bool {
    environment
        .and_then(|e| e.status.as_ref())
        .and_then(|s| s.phase)
        == Some(EnvironmentPhase::Ready)
}

/// Applies the example catalog and environment as the admin.
async fn apply_example(cluster: &LocalCluster) {
    apply_files(
        cluster.client(),
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
        cluster.client(),
        &[workspace().join("examples/environment.yaml")],
        FIELD_MANAGER,
        "default",
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_run_from_the_image_and_the_example_environment_becomes_ready() {
    if let Some(reason) = cannot_run_images() {
        eprintln!("SKIPPED: the operators cannot be run from the image's filesystem: {reason}");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let (rootfs, image_env) = unpacked_image(scratch.path());

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
    let charts = charts_url(&cluster);

    step("a ServiceAccount and a token per operator, mounted as in a pod");
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": SYSTEM_NAMESPACE}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let config_dir = scratch.path().join("repositories");
    std::fs::create_dir(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("repositories.yaml"),
        format!("repositories:\n  {CHARTS_ALIAS}:\n    url: {charts}\nindexTtl: \"0s\"\n"),
    )
    .unwrap();
    let mut containers = Vec::new();
    for name in OPERATORS {
        accounts
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap(),
            )
            .await
            .unwrap();
        let token = service_account_token(&endpoint, SYSTEM_NAMESPACE, name).await;
        let pod = scratch.path().join(name);
        let mut mounts = vec![
            service_account_dir(
                &pod.join("serviceaccount"),
                &token,
                endpoint.ca_pem(),
                SYSTEM_NAMESPACE,
            ),
            Mount {
                host: empty_dir(&pod.join("tmp")),
                path: "/tmp".into(),
                read_only: false,
            },
        ];
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
        if name == "upstart-helmrelease-operator" {
            args.extend([
                // As the chart: `helm`, found by the operator in the image's /usr/bin.
                "--helm-path=helm".into(),
                "--repository-config=/etc/upstart/repositories.yaml".into(),
                format!("--credentials-namespace={SYSTEM_NAMESPACE}"),
                format!("--cache-dir=/{CACHE_DIR}"),
            ]);
            let cache = pod.join("cache");
            mkdir_owned_by_image_user(&cache);
            mounts.push(Mount {
                host: cache,
                path: format!("/{CACHE_DIR}"),
                read_only: false,
            });
            mounts.push(Mount {
                host: config_dir.clone(),
                path: "/etc/upstart".into(),
                read_only: true,
            });
        }
        containers.push(Container {
            name: name.to_string(),
            binary: format!("/usr/bin/{name}"),
            args,
            // No POD_NAMESPACE, so the namespace file is what tells the operator its namespace.
            env: vec![
                ("POD_NAME".into(), format!("{name}-0")),
                ("RUST_LOG".into(), "info".into()),
            ],
            mounts,
            log: pod.join("log"),
        });
    }

    step("the three operators, from the image, in-cluster configuration only");
    let mut running: Vec<Running> = containers
        .iter()
        .map(|c| start_container(&rootfs, c, &image_env, endpoint.addr.port()))
        .collect();

    step("the example catalog and environment applied");
    apply_example(&cluster).await;

    step("the environment becomes Ready");
    wait_for_environment(&client, &containers, &mut running, "Ready", is_ready).await;

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

/// Runs `program ARGS` from the image's root filesystem as the image's user, with `/dev` and
/// `tmp` (at `/tmp`) bind-mounted, and only `env`: as the operator runs git (an emptied
/// environment, no PATH), so git finds its helpers by its compiled-in exec path alone.
fn run_in_image(rootfs: &Path, tmp: &Path, env: &[(&str, &str)], argv: &[&str]) -> Output {
    run(&mut in_image(rootfs, tmp, env, argv))
}

/// The command that runs `argv` in the image's root filesystem (see [`run_in_image`]).
fn in_image(rootfs: &Path, tmp: &Path, env: &[(&str, &str)], argv: &[&str]) -> Command {
    let setup = r#"set -e
root="$1"
chroot="$2"
tmp="$3"
shift 3
mount --bind /dev "$root/dev"
mount --bind "$tmp" "$root/tmp"
exec env -u PATH "$chroot" --userspec=65532:65532 "$root" "$@"
"#;
    for dir in ["dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    let mut command = Command::new(on_path("unshare").unwrap());
    command
        .args(["--mount", "--pid", "--fork"])
        .arg(on_path("sh").unwrap())
        .args(["-c", setup, "setup"])
        .arg(rootfs)
        .arg(on_path("chroot").unwrap())
        .arg(tmp)
        .args(argv)
        .env_clear()
        // Only the setup script uses the host's PATH; the program in the image gets none.
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    command
}

#[test]
fn git_from_the_image_lists_fetches_and_archives_a_chart_over_http_and_reaches_ssh_in_its_root_filesystem()
 {
    use upstart_test_support::git_server::{GitServer, git};

    if let Some(reason) = cannot_run_images() {
        eprintln!("SKIPPED: git cannot be run from the image's filesystem: {reason}");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let (rootfs, _) = unpacked_image(scratch.path());
    let tmp = empty_dir(&scratch.path().join("tmp"));
    mkdir_owned_by_image_user(&tmp.join("home"));

    step("git and ssh start in the image");
    let version = run_in_image(&rootfs, &tmp, &[], &["/usr/bin/git", "--version"]);
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("git version "),
        "{version:?}"
    );
    let ssh = run_in_image(&rootfs, &tmp, &[], &["/usr/bin/ssh", "-V"]);
    assert!(
        String::from_utf8_lossy(&ssh.stderr).contains("OpenSSH"),
        "{ssh:?}"
    );

    step("a chart in a repository served over http on loopback");
    let served = scratch.path().join("served");
    let server = GitServer::start(&served, None);
    let work = server.create_repository("charts", &scratch.path().join("work"));
    std::fs::create_dir_all(work.join("demo")).unwrap();
    let chart_yaml = "apiVersion: v2\nname: demo\nversion: 0.1.0\n";
    std::fs::write(work.join("demo/Chart.yaml"), chart_yaml).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "demo chart"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let commit = git(&work, &["rev-parse", "HEAD"]);
    let url = format!("{}/charts.git", server.url());

    step("what chart-source/src/git.rs runs, from the image: ls-remote, fetch, cat-file, archive");
    let env = [
        ("HOME", "/tmp/home"),
        ("GIT_CONFIG_NOSYSTEM", "1"),
        ("GIT_CONFIG_GLOBAL", "/dev/null"),
        ("GIT_TERMINAL_PROMPT", "0"),
        ("GIT_ALLOW_PROTOCOL", "http"),
    ];
    let listed = run_in_image(
        &rootfs,
        &tmp,
        &env,
        &["/usr/bin/git", "ls-remote", "--", &url, "main"],
    );
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        format!("{commit}\trefs/heads/main\n")
    );
    let bare = "/tmp/home/repo.git";
    run_in_image(
        &rootfs,
        &tmp,
        &env,
        &["/usr/bin/git", "init", "--bare", "-q", bare],
    );
    let with_dir: Vec<(&str, &str)> = env.iter().copied().chain([("GIT_DIR", bare)]).collect();
    run_in_image(
        &rootfs,
        &tmp,
        &with_dir,
        &[
            "/usr/bin/git",
            "fetch",
            "-q",
            "--depth=1",
            "--no-tags",
            "--no-write-fetch-head",
            "--",
            &url,
            &commit,
        ],
    );
    let shown = run_in_image(
        &rootfs,
        &tmp,
        &with_dir,
        &[
            "/usr/bin/git",
            "cat-file",
            "blob",
            &format!("{commit}:demo/Chart.yaml"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&shown.stdout), chart_yaml);
    let archived = run_in_image(
        &rootfs,
        &tmp,
        &with_dir,
        &[
            "/usr/bin/git",
            "archive",
            "--format=tar",
            "--prefix=demo/",
            &format!("{commit}:demo"),
        ],
    );
    let tar = String::from_utf8_lossy(&archived.stdout);
    assert!(
        tar.contains("demo/Chart.yaml") && tar.contains(chart_yaml),
        "the archive lacks demo/Chart.yaml"
    );
    assert!(server.requests() >= 2, "git did not ask the server");

    step("git+ssh without a shell: git runs the operator as its ssh, which becomes ssh");
    let options = [
        "ssh",
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
    ]
    .join("\n");
    let ssh_env = [
        ("HOME", "/tmp/home"),
        ("PATH", "/usr/bin"),
        ("GIT_TERMINAL_PROMPT", "0"),
        ("GIT_ALLOW_PROTOCOL", "ssh"),
        ("GIT_SSH", "/usr/bin/upstart-helmrelease-operator"),
        ("GIT_SSH_VARIANT", "ssh"),
        (upstart_chart_source::SSH_WRAPPER_ENV, &options),
    ];
    // Port 1 on loopback refuses: the refusal is ssh's own message, so ssh ran with git's
    // arguments after the options, and no shell was needed.
    let refused = in_image(
        &rootfs,
        &tmp,
        &ssh_env,
        &[
            "/usr/bin/git",
            "ls-remote",
            "ssh://git@127.0.0.1:1/charts.git",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("connect to host 127.0.0.1 port 1: Connection refused"),
        "{stderr}"
    );
}

fn charts_url(cluster: &LocalCluster) -> String {
    cluster
        .chart_repositories()
        .iter()
        .find(|r| r.alias == CHARTS_ALIAS)
        .unwrap()
        .url
        .clone()
}

/// The local control plane over HTTPS with ServiceAccount tokens and RBAC enforced, and
/// `charts/upstart-operators` installed into it by the pinned helm, as the admin.
async fn cluster_with_the_chart(scratch: &Path) -> LocalCluster {
    step("the local control plane over HTTPS, charts served, tokens on, RBAC enforced");
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
    cluster.control_plane().enable_rbac().unwrap();

    step("helm install charts/upstart-operators (the pinned helm)");
    let kubeconfig = scratch.join("kubeconfig");
    endpoint.write_kubeconfig(&kubeconfig).unwrap();
    let helm = upstart_local_cluster::locate_helm()
        .expect("helm: run scripts/bootstrap-tools (it installs the pinned .tools/bin/helm)");
    let repositories = serde_json::json!({ CHARTS_ALIAS: { "url": charts_url(&cluster) } });
    let output = tokio::process::Command::new(helm)
        .args(["install", "upstart-operators"])
        .arg(workspace().join("charts/upstart-operators"))
        .args(["--namespace", SYSTEM_NAMESPACE, "--create-namespace"])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg(format!("--set-json=repositories={repositories}"))
        .arg("--set=indexTtl=0s")
        .env("HELM_CACHE_HOME", scratch.join("helm/cache"))
        .env("HELM_CONFIG_HOME", scratch.join("helm/config"))
        .env("HELM_DATA_HOME", scratch.join("helm/data"))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "helm install failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    cluster
}

/// The kubelet's part for one Deployment of the chart: its pod template's container, with its
/// command, args and env (fieldRefs resolved), its volumes (emptyDirs, ConfigMaps) and its
/// ServiceAccount's token mounted as in a pod.
async fn container_of(
    cluster: &LocalCluster,
    deployment: &Deployment,
    rootfs: &Path,
    image_env: &[String],
    scratch: &Path,
) -> Container {
    let endpoint = cluster.endpoint().unwrap();
    let name = deployment.metadata.name.clone().unwrap();
    let namespace = deployment.metadata.namespace.clone().unwrap();
    let pod_name = format!("{name}-0");
    let spec = deployment.spec.clone().unwrap().template.spec.unwrap();
    assert_eq!(spec.containers.len(), 1, "{name}: one container");
    let container = spec.containers[0].clone();
    let dir = scratch.join(&name);

    let account = spec.service_account_name.clone().unwrap();
    let token = service_account_token(endpoint, &namespace, &account).await;
    let mut mounts = vec![service_account_dir(
        &dir.join("serviceaccount"),
        &token,
        endpoint.ca_pem(),
        &namespace,
    )];
    for mount in container.volume_mounts.clone().unwrap_or_default() {
        let volume = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .unwrap_or_else(|| panic!("{name}: no volume {}", mount.name));
        let host = dir.join("volumes").join(&volume.name);
        if volume.empty_dir.is_some() {
            empty_dir(&host);
        } else if let Some(source) = &volume.config_map {
            let config_map = Api::<ConfigMap>::namespaced(cluster.client().clone(), &namespace)
                .get(&source.name)
                .await
                .unwrap();
            std::fs::create_dir_all(&host).unwrap();
            for (key, value) in config_map.data.unwrap_or_default() {
                std::fs::write(host.join(key), value).unwrap();
            }
        } else {
            panic!("{name}: the stand-in kubelet mounts emptyDirs and ConfigMaps only: {volume:?}");
        }
        mounts.push(Mount {
            host,
            path: mount.mount_path.clone(),
            read_only: mount.read_only.unwrap_or(false),
        });
    }

    // The command, found on the image's PATH as a runtime finds it.
    let command = container.command.clone().unwrap_or_default();
    let path = image_env
        .iter()
        .find_map(|v| v.strip_prefix("PATH="))
        .unwrap_or("/usr/bin");
    let binary = path
        .split(':')
        .map(|dir| format!("{dir}/{}", command[0]))
        .find(|candidate| rootfs.join(candidate.trim_start_matches('/')).is_file())
        .unwrap_or_else(|| panic!("{name}: {} is not on the image's PATH {path}", command[0]));
    let args = command[1..]
        .iter()
        .chain(container.args.iter().flatten())
        .map(|arg| {
            if arg.starts_with("--metrics-addr=") {
                // Each pod has its own network; here the three share the host's.
                "--metrics-addr=127.0.0.1:0".to_string()
            } else {
                arg.clone()
            }
        })
        .collect();
    let env = container
        .env
        .iter()
        .flatten()
        .map(|variable| {
            let field = variable
                .value_from
                .as_ref()
                .and_then(|from| from.field_ref.as_ref())
                .map(|field| field.field_path.as_str());
            let value = match field {
                Some("metadata.name") => pod_name.clone(),
                Some("metadata.namespace") => namespace.clone(),
                Some(other) => panic!("{name}: the stand-in kubelet does not resolve {other}"),
                None => variable.value.clone().unwrap_or_default(),
            };
            (variable.name.clone(), value)
        })
        .collect();
    Container {
        name,
        binary,
        args,
        env,
        mounts,
        log: dir.join("log"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installed_with_rbac_enforced_runs_the_example_environment_until_its_ttl_tears_it_down()
 {
    if let Some(reason) = cannot_run_images() {
        eprintln!("SKIPPED: the operators cannot be run from the image's filesystem: {reason}");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let (rootfs, image_env) = unpacked_image(scratch.path());
    let cluster = cluster_with_the_chart(scratch.path()).await;
    let client = cluster.client().clone();
    let port = cluster.endpoint().unwrap().addr.port();

    step("each Deployment's container, from the image, as its pod template says");
    let deployments = Api::<Deployment>::namespaced(client.clone(), SYSTEM_NAMESPACE)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(deployments.len(), 3, "one Deployment per operator");
    let mut containers = Vec::new();
    for deployment in &deployments {
        containers
            .push(container_of(&cluster, deployment, &rootfs, &image_env, scratch.path()).await);
    }
    let mut running: Vec<Running> = containers
        .iter()
        .map(|c| start_container(&rootfs, c, &image_env, port))
        .collect();

    step("the example catalog and environment applied; the environment becomes Ready");
    apply_example(&cluster).await;
    wait_for_environment(&client, &containers, &mut running, "Ready", is_ready).await;
    let environments: Api<UpstartEnvironment> = Api::all(client.clone());
    let namespace = environments
        .get(ENVIRONMENT)
        .await
        .unwrap()
        .status
        .and_then(|s| s.namespace)
        .expect("a Ready environment names its namespace");

    step("its releases were written as the namespace's release account (tenancy)");
    Api::<ServiceAccount>::namespaced(client.clone(), &namespace)
        .get("upstart-release")
        .await
        .unwrap();
    let binding = Api::<RoleBinding>::namespaced(client.clone(), &namespace)
        .get("upstart-release")
        .await
        .unwrap();
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(
        binding.role_ref.name,
        format!("upstart-release-{SYSTEM_NAMESPACE}")
    );
    let releases =
        Api::<upstart_api::v1alpha1::HelmRelease>::namespaced(client.clone(), &namespace)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
    assert!(!releases.is_empty());
    for release in &releases {
        assert_eq!(
            release.spec.service_account_name.as_deref(),
            Some("upstart-release"),
            "{:?}",
            release.metadata.name
        );
    }

    step("its ttl shortened to 1s: it expires, is torn down and deleted");
    environments
        .patch(
            ENVIRONMENT,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"ttl": "1s"}})),
        )
        .await
        .unwrap();
    wait_for_environment(&client, &containers, &mut running, "deleted", |e| {
        e.is_none()
    })
    .await;
    let left = Api::<Namespace>::all(client.clone())
        .get_opt(&namespace)
        .await
        .unwrap();
    assert!(
        left.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "the environment's namespace {namespace} is gone or going"
    );

    step("no operator was refused anything on the way: the chart's RBAC is enough");
    for container in &containers {
        for log in [
            container.log.clone(),
            container.log.with_extension("stderr"),
        ] {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let refused: Vec<&str> = text.lines().filter(|l| l.contains("forbidden")).collect();
            assert!(
                refused.is_empty(),
                "{} was refused:\n{}",
                container.name,
                refused.join("\n")
            );
        }
    }
    drop(running);
    cluster.shutdown().await;
}

/// A client of the HTTPS endpoint presenting a token of the chart's ServiceAccount `account`.
async fn operator_client(cluster: &LocalCluster, account: &str) -> kube::Client {
    let endpoint = cluster.endpoint().unwrap();
    let token = service_account_token(endpoint, SYSTEM_NAMESPACE, account).await;
    let kubeconfig = endpoint.kubeconfig_yaml().replace(endpoint.token(), &token);
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The message of the 403 `result` failed with.
fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => status.message,
        other => panic!("expected a 403, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_service_accounts_are_refused_what_the_operators_do_not_need() {
    let scratch = tempfile::tempdir().unwrap();
    let cluster = cluster_with_the_chart(scratch.path()).await;
    let admin = cluster.client().clone();
    Api::<Secret>::namespaced(admin.clone(), "kube-system")
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "cloud-credentials"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let take_over = serde_json::json!({
        "metadata": {"name": "take-over"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "mallory"}],
    });
    let cluster_admin: RoleBinding = serde_json::from_value(take_over.clone()).unwrap();
    let cluster_admin_cluster_wide: ClusterRoleBinding = serde_json::from_value(take_over).unwrap();

    for operator in OPERATORS {
        step(operator);
        let user = format!("system:serviceaccount:{SYSTEM_NAMESPACE}:{operator}");
        let client = operator_client(&cluster, operator).await;
        // What it needs works: the token and its bindings are in place.
        let own_kind = match operator {
            "upstart-helmrelease-operator" => "helmreleases",
            "upstart-service-operator" => "upstartservices",
            _ => "upstartenvironments",
        };
        let resource = kube::api::ApiResource {
            group: "upstartoperators.upstart.com".into(),
            version: "v1alpha1".into(),
            api_version: "upstartoperators.upstart.com/v1alpha1".into(),
            kind: String::new(),
            plural: own_kind.into(),
        };
        Api::<kube::api::DynamicObject>::all_with(client.clone(), &resource)
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("{operator} cannot list its {own_kind}: {e}"));

        // No RoleBinding or ClusterRoleBinding to cluster-admin. The environment operator may
        // write RoleBindings (each environment's release account), so the bind check refuses
        // it: it does not hold what cluster-admin grants, and may bind the releases' role only.
        let refused = forbidden(
            Api::<RoleBinding>::namespaced(client.clone(), "default")
                .create(&PostParams::default(), &cluster_admin)
                .await,
        );
        if operator == "upstart-environment-operator" {
            assert_eq!(
                refused,
                format!(
                    "rolebindings.rbac.authorization.k8s.io \"take-over\" is forbidden: user \"{user}\" (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:{SYSTEM_NAMESPACE}\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}}\n{{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}}"
                )
            );
        } else {
            assert_eq!(
                refused,
                format!(
                    r#"rolebindings.rbac.authorization.k8s.io is forbidden: User "{user}" cannot create resource "rolebindings" in API group "rbac.authorization.k8s.io" in the namespace "default""#
                )
            );
        }
        assert_eq!(
            forbidden(
                Api::<ClusterRoleBinding>::all(client.clone())
                    .create(&PostParams::default(), &cluster_admin_cluster_wide)
                    .await
            ),
            format!(
                r#"clusterrolebindings.rbac.authorization.k8s.io is forbidden: User "{user}" cannot create resource "clusterrolebindings" in API group "rbac.authorization.k8s.io" at the cluster scope"#
            )
        );
        // Not listing another namespace's Secrets.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
        if operator != "upstart-helmrelease-operator" {
            assert_eq!(
                forbidden(secrets.list(&ListParams::default()).await),
                format!(
                    r#"secrets is forbidden: User "{user}" cannot list resource "secrets" in API group "" in the namespace "kube-system""#
                )
            );
        }
        if operator == "upstart-environment-operator" {
            assert_eq!(
                forbidden(secrets.get("cloud-credentials").await),
                format!(
                    r#"secrets "cloud-credentials" is forbidden: User "{user}" cannot get resource "secrets" in API group "" in the namespace "kube-system""#
                )
            );
        } else {
            // Neither deleting a namespace: only the environment operator manages them.
            assert_eq!(
                forbidden(
                    Api::<Namespace>::all(client.clone())
                        .delete("kube-system", &Default::default())
                        .await
                ),
                format!(
                    r#"namespaces "kube-system" is forbidden: User "{user}" cannot delete resource "namespaces" in API group "" in the namespace "kube-system""#
                )
            );
        }
        if operator == "upstart-helmrelease-operator" {
            // It writes charts' objects as the release accounts it may impersonate, which hold
            // only what their namespace's bindings give them (none here)...
            let account = "system:serviceaccount:default:upstart-release";
            let request = http::Request::post(
                "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
            )
            .header("Impersonate-User", account)
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&cluster_admin).unwrap())
            .unwrap();
            assert_eq!(
                forbidden(client.request_text(request).await),
                format!(
                    r#"rolebindings.rbac.authorization.k8s.io is forbidden: User "{account}" cannot create resource "rolebindings" in API group "rbac.authorization.k8s.io" in the namespace "default""#
                )
            );
            // ...and no other account.
            let request = http::Request::get("/api/v1/namespaces/kube-system/secrets")
                .header(
                    "Impersonate-User",
                    "system:serviceaccount:kube-system:default",
                )
                .body(Vec::new())
                .unwrap();
            assert_eq!(
                forbidden(client.request_text(request).await),
                format!(
                    r#"serviceaccounts "default" is forbidden: User "{user}" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "kube-system""#
                )
            );
        }
        // Nor impersonating anyone else.
        let request = http::Request::get("/api/v1/namespaces/kube-system/secrets")
            .header("Impersonate-User", "admin")
            .body(Vec::new())
            .unwrap();
        assert_eq!(
            forbidden(client.request_text(request).await),
            format!(
                r#"users "admin" is forbidden: User "{user}" cannot impersonate resource "users" in API group "" at the cluster scope"#
            )
        );
    }
    cluster.shutdown().await;
}

fn step(what: &str) {
    eprintln!("==> {what}");
}

/// Fails the test with `why` and the end of each container's log.
fn break_with_logs(containers: &[Container], why: &str) -> ! {
    let logs: Vec<String> = containers
        .iter()
        .map(|c| {
            format!(
                "--- {} (stdout)\n{}\n--- {} (stderr)\n{}",
                c.name,
                tail(&c.log, 30),
                c.name,
                tail(&c.log.with_extension("stderr"), 30)
            )
        })
        .collect();
    panic!("{why}\n{}", logs.join("\n"));
}

/// The image holds the operators, helm, git (with its http transport and ssh), their libraries,
/// the CA bundle and the user files, nothing else: no shell, no package manager.
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
            "usr/bin/git",
            "usr/bin/helm",
            "usr/bin/ssh",
            "usr/bin/upstart-environment-operator",
            "usr/bin/upstart-helmrelease-operator",
            "usr/bin/upstart-service-operator",
            "usr/lib/git-core/git",
            "usr/lib/git-core/git-remote-http",
            "usr/lib/git-core/git-remote-https",
        ]
    );
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
}
