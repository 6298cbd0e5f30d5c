//! Imperative kubectl, as a user types it, against the HTTPS endpoint with the workload
//! simulator running (what `upstart dev --no-operators` serves): `create
//! deployment|job|cronjob|ingress|role|rolebinding|...` (protobuf bodies), `run`, `expose`,
//! `scale`, `autoscale`, `rollout status`, `wait`, `label`, `annotate`, `patch`, `edit`, `diff`,
//! `apply` (client-side twice, then server-side), `explain`, `api-resources`, `get -o wide`,
//! `events`, `auth can-i`, `auth whoami`, `delete --cascade=foreground`.
//!
//! Every check runs even when an earlier one failed, and the test fails listing all failures,
//! so one run shows everything that differs from a real cluster. kubectl is the pinned one
//! (`UPSTART_KUBECTL`, else `.tools/bin/kubectl`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use upstart_control_plane::Endpoint;

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
    dir: PathBuf,
    namespace: String,
}

impl Kubectl {
    fn new(endpoint: &Endpoint, dir: &Path, namespace: &str) -> Self {
        let kubeconfig = dir.join("kubeconfig");
        endpoint.write_kubeconfig(&kubeconfig).unwrap();
        Kubectl {
            bin: upstart_test_support::kubectl(),
            kubeconfig,
            cache: dir.join("cache"),
            dir: dir.to_path_buf(),
            namespace: namespace.to_string(),
        }
    }

    /// Runs kubectl in the test's namespace, off the async runtime (the server answers on the
    /// runtime's threads), with `env` added to its environment.
    async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .arg("-n")
            .arg(&self.namespace)
            .args(args)
            .env_remove("KUBECONFIG");
        for (k, v) in env {
            c.env(k, v);
        }
        tokio::task::spawn_blocking(move || c.output().expect("kubectl runs"))
            .await
            .unwrap()
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[]).await
    }

    fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.to_string_lossy().into_owned()
    }
}

/// The outcome of each named check.
#[derive(Default)]
struct Checks {
    passed: Vec<String>,
    failed: Vec<String>,
}

impl Checks {
    /// Records a check on kubectl's output: it must exit 0 and `expect` must hold on stdout.
    fn output(&mut self, name: &str, out: &Output, expect: impl FnOnce(&str) -> bool) -> String {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() && expect(&stdout) {
            self.passed.push(name.to_string());
        } else {
            self.failed.push(format!(
                "{name}: exit {:?}\n    stdout: {}\n    stderr: {}",
                out.status.code(),
                stdout.trim(),
                stderr.trim()
            ));
        }
        stdout
    }

    fn ok(&mut self, name: &str, out: &Output) -> String {
        self.output(name, out, |_| true)
    }

    fn that(&mut self, name: &str, holds: bool, why: impl FnOnce() -> String) {
        if holds {
            self.passed.push(name.to_string());
        } else {
            self.failed.push(format!("{name}: {}", why()));
        }
    }
}

const CONFIGMAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  colour: blue\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imperative_kubectl_commands_work_as_against_a_cluster() {
    let cp = common::control_plane();
    let simulator = upstart_workload_simulator::Simulator::new(
        cp.client(),
        upstart_workload_simulator::Options {
            ready_after: Duration::from_millis(200),
            fail: false,
        },
    )
    .spawn();
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ns = "imperative";
    let k = Kubectl::new(&endpoint, tmp.path(), ns);
    let mut c = Checks::default();

    c.ok(
        "create namespace",
        &k.run(&["create", "namespace", ns]).await,
    );

    // --- create, with the protobuf bodies client-go's typed clients send --------------------
    let creates: &[(&str, &[&str])] = &[
        (
            "create deployment",
            &[
                "create",
                "deployment",
                "web",
                "--image=nginx:1",
                "--replicas=2",
                "--port=8080",
            ],
        ),
        (
            "create deployment --replicas=0",
            &[
                "create",
                "deployment",
                "idle",
                "--image=nginx:1",
                "--replicas=0",
            ],
        ),
        (
            "create job",
            &["create", "job", "once", "--image=busybox", "--", "true"],
        ),
        (
            "create cronjob",
            &[
                "create",
                "cronjob",
                "nightly",
                "--image=busybox",
                "--schedule=0 3 * * *",
            ],
        ),
        (
            "create job --from=cronjob",
            &["create", "job", "manual", "--from=cronjob/nightly"],
        ),
        (
            "create ingress",
            &[
                "create",
                "ingress",
                "web",
                "--class=nginx",
                "--rule=web.local/*=web:80",
            ],
        ),
        (
            "create role",
            &[
                "create",
                "role",
                "reader",
                "--verb=get,list",
                "--resource=pods,configmaps",
            ],
        ),
        (
            "create rolebinding",
            &[
                "create",
                "rolebinding",
                "reader",
                "--role=reader",
                "--serviceaccount=imperative:default",
            ],
        ),
        (
            "create clusterrole",
            &[
                "create",
                "clusterrole",
                "node-reader",
                "--verb=get",
                "--resource=nodes",
            ],
        ),
        (
            "create clusterrolebinding",
            &[
                "create",
                "clusterrolebinding",
                "node-reader",
                "--clusterrole=node-reader",
                "--group=devs",
            ],
        ),
        (
            "create pdb",
            &[
                "create",
                "pdb",
                "web",
                "--selector=app=web",
                "--min-available=1",
            ],
        ),
        (
            "create service clusterip",
            &["create", "service", "clusterip", "backend", "--tcp=80:8080"],
        ),
        (
            "create configmap",
            &["create", "configmap", "literal", "--from-literal=a=b"],
        ),
        (
            "create secret generic",
            &[
                "create",
                "secret",
                "generic",
                "creds",
                "--from-literal=password=p",
            ],
        ),
        (
            "create serviceaccount",
            &["create", "serviceaccount", "robot"],
        ),
        (
            "create priorityclass",
            &["create", "priorityclass", "high", "--value=1000"],
        ),
        (
            "create quota",
            &["create", "quota", "small", "--hard=pods=10,requests.cpu=2"],
        ),
        (
            "run",
            &[
                "run",
                "one-off",
                "--image=busybox",
                "--restart=Never",
                "--labels=app=one",
            ],
        ),
    ];
    for (name, args) in creates {
        c.ok(name, &k.run(args).await);
    }
    let out = k
        .run(&[
            "get",
            "ingress",
            "web",
            "-o",
            "jsonpath={.spec.rules[0].http.paths[0].backend.service.name}",
        ])
        .await;
    c.output(
        "ingress rule stored with its inlined http value",
        &out,
        |s| s == "web",
    );
    let out = k
        .run(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.strategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.progressDeadlineSeconds} {.spec.template.spec.restartPolicy} {.spec.template.spec.dnsPolicy} {.spec.template.spec.containers[0].imagePullPolicy} {.spec.template.spec.containers[0].ports[0].protocol}",
        ])
        .await;
    c.output(
        "deployment read back with the API server's defaults",
        &out,
        |s| s == "25% 10 600 Always ClusterFirst IfNotPresent TCP",
    );
    let out = k
        .run(&[
            "get",
            "deployment",
            "idle",
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .await;
    c.output(
        "deployment created with --replicas=0 keeps zero replicas",
        &out,
        |s| s == "0",
    );
    let out = k
        .run(&[
            "get",
            "job",
            "once",
            "-o",
            "jsonpath={.spec.template.metadata.labels.job-name} {.spec.completionMode} {.spec.selector.matchLabels}",
        ])
        .await;
    c.output(
        "job read back with its generated selector and job-name label",
        &out,
        |s| s.starts_with("once NonIndexed {\"batch.kubernetes.io/controller-uid\":"),
    );
    let out = k
        .run(&[
            "get",
            "job",
            "manual",
            "-o",
            "jsonpath={.metadata.ownerReferences[0].kind}",
        ])
        .await;
    c.output("job from cronjob owned by it", &out, |s| s == "CronJob");
    let out = k
        .run(&[
            "get",
            "quota",
            "small",
            "-o",
            "jsonpath={.spec.hard.requests\\.cpu}",
        ])
        .await;
    c.output("quota quantities stored", &out, |s| s == "2");

    // --- expose, scale, autoscale, rollout, wait -------------------------------------------
    c.ok(
        "expose",
        &k.run(&[
            "expose",
            "deployment",
            "web",
            "--port=80",
            "--target-port=8080",
        ])
        .await,
    );
    let out = k
        .run(&[
            "get",
            "service",
            "web",
            "-o",
            "jsonpath={.spec.selector.app} {.spec.ports[0].targetPort}",
        ])
        .await;
    c.output("exposed service selects the deployment", &out, |s| {
        s == "web 8080"
    });
    c.ok(
        "scale",
        &k.run(&["scale", "deployment", "web", "--replicas=3"]).await,
    );
    let out = k
        .run(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .await;
    c.output("scaled replicas", &out, |s| s == "3");
    c.ok(
        "autoscale",
        &k.run(&["autoscale", "deployment", "web", "--min=1", "--max=4"])
            .await,
    );
    let out = k
        .run(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await;
    c.output("rollout status", &out, |s| {
        s.contains("successfully rolled out")
    });
    c.ok(
        "wait for condition Available",
        &k.run(&[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=30s",
        ])
        .await,
    );
    c.ok(
        "wait for condition complete",
        &k.run(&[
            "wait",
            "--for=condition=complete",
            "job/once",
            "--timeout=30s",
        ])
        .await,
    );
    c.ok(
        "wait for jsonpath",
        &k.run(&[
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            "pod/one-off",
            "--timeout=30s",
        ])
        .await,
    );

    // --- label, annotate, patch, edit --------------------------------------------------------
    c.ok(
        "label",
        &k.run(&["label", "deployment", "web", "tier=front"]).await,
    );
    let out = k
        .run(&["get", "deployments", "-l", "tier=front", "-o", "name"])
        .await;
    c.output("get by the new label", &out, |s| {
        s.trim() == "deployment.apps/web"
    });
    c.ok(
        "annotate",
        &k.run(&["annotate", "deployment", "web", "note=hello"])
            .await,
    );
    c.ok(
        "patch (strategic)",
        &k.run(&[
            "patch",
            "deployment",
            "web",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:2"}]}}}}"#,
        ])
        .await,
    );
    c.ok(
        "edit",
        &k.run_with(
            &["edit", "deployment", "web"],
            &[("KUBE_EDITOR", "sed -i s/nginx:2/nginx:3/")],
        )
        .await,
    );
    let out = k
        .run(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await;
    c.output("patched and edited image", &out, |s| s == "nginx:3");

    // --- apply, diff ------------------------------------------------------------------------
    let cm = k.file("settings.yaml", CONFIGMAP);
    let out = k.run(&["apply", "-f", &cm]).await;
    c.output("apply (client-side)", &out, |s| {
        s.contains("configmap/settings created")
    });
    let out = k.run(&["apply", "-f", &cm]).await;
    c.output("apply again is unchanged", &out, |s| {
        s.contains("configmap/settings unchanged")
    });
    let same = k.run(&["diff", "-f", &cm]).await;
    c.that(
        "diff of an unchanged manifest exits 0",
        same.status.code() == Some(0),
        || {
            format!(
                "exit {:?}: {}",
                same.status.code(),
                String::from_utf8_lossy(&same.stderr)
            )
        },
    );
    let changed = k.file("settings-red.yaml", &CONFIGMAP.replace("blue", "red"));
    let diff = k.run(&["diff", "-f", &changed]).await;
    let diff_out = String::from_utf8_lossy(&diff.stdout);
    c.that(
        "diff of a changed manifest exits 1 and shows the change",
        diff.status.code() == Some(1) && diff_out.contains("+  colour: red"),
        || {
            format!(
                "exit {:?}: {diff_out} {}",
                diff.status.code(),
                String::from_utf8_lossy(&diff.stderr)
            )
        },
    );
    let out = k.run(&["apply", "--server-side", "-f", &changed]).await;
    c.output("apply --server-side after client-side apply", &out, |s| {
        s.contains("configmap/settings serverside-applied")
    });
    let out = k
        .run(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.colour}",
        ])
        .await;
    c.output("server-side apply took over", &out, |s| s == "red");

    // --- reading: explain, api-resources, -o wide, events, auth ------------------------------
    let out = k.run(&["explain", "deployment.spec.replicas"]).await;
    c.output("explain", &out, |s| {
        s.contains("replicas") && s.contains("<integer>")
    });
    let out = k.run(&["api-resources"]).await;
    c.output("api-resources", &out, |s| {
        [
            "deployments",
            "cronjobs",
            "ingresses",
            "horizontalpodautoscalers",
            "runtimeclasses",
            "apiservices",
            "certificatesigningrequests",
        ]
        .iter()
        .all(|r| s.contains(r))
    });
    let out = k.run(&["get", "deployments", "-o", "wide"]).await;
    c.output("get deployments -o wide", &out, |s| {
        s.contains("CONTAINERS")
            && s.contains("IMAGES")
            && s.contains("SELECTOR")
            && s.contains("nginx:3")
    });
    let out = k.run(&["get", "services", "-o", "wide"]).await;
    c.output("get services -o wide", &out, |s| {
        s.contains("EXTERNAL-IP")
            && s.contains("PORT(S)")
            && s.contains("SELECTOR")
            && s.contains("80/TCP")
    });
    let out = k.run(&["get", "pods", "-o", "wide"]).await;
    c.output("get pods -o wide", &out, |s| {
        s.contains("NODE") && s.contains("one-off")
    });
    let out = k.run(&["get", "pvc,daemonsets"]).await;
    c.ok("get pvc,daemonsets", &out);
    let out = k.run(&["events"]).await;
    c.ok("events", &out);
    let out = k.run(&["auth", "can-i", "create", "deployments"]).await;
    c.output("auth can-i", &out, |s| s.trim() == "yes");
    let out = k.run(&["auth", "whoami"]).await;
    c.ok("auth whoami", &out);

    // --- delete -----------------------------------------------------------------------------
    let out = k
        .run(&[
            "delete",
            "deployment",
            "web",
            "--cascade=foreground",
            "--timeout=30s",
        ])
        .await;
    c.output("delete --cascade=foreground", &out, |s| {
        s.contains("deleted")
    });
    let gone = k.run(&["get", "deployment", "web"]).await;
    c.that("deployment gone", !gone.status.success(), || {
        "still there".into()
    });

    simulator.shutdown().await;
    eprintln!(
        "kubectl: {}/{} checks passed",
        c.passed.len(),
        c.passed.len() + c.failed.len()
    );
    assert!(
        c.failed.is_empty(),
        "{} of {} kubectl checks failed:\n{}",
        c.failed.len(),
        c.passed.len() + c.failed.len(),
        c.failed.join("\n")
    );
}
