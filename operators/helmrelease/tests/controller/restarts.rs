//! Restart safety from status (issue 15, risk 6): what a restarted operator must not do again
//! for the same inputs, because status says it was done: run a hook whose object is gone, or
//! render a Ready release once more (random values would rotate on every failover).

use std::path::PathBuf;

use k8s_openapi::api::batch::v1::Job;

use super::*;

/// `random`: a ConfigMap holding a value helm generates at each render.
pub(super) fn charts(root: &Path) {
    write(
        root,
        "random/Chart.yaml",
        "apiVersion: v2\nname: random\nversion: 0.1.0\n",
    );
    write(
        root,
        "random/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-generated\ndata:\n  token: {{ randAlphaNum 24 | quote }}\n",
    );
}

/// A helm that appends its subcommand to `helm.log` beside it, then runs the real helm: the
/// test counts renders (`template`) as helm processes.
fn counting_helm(dir: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("helm.log");
    let script = dir.join("counting-helm");
    let real = upstart_test_support::helm();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

fn renders(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == "template")
        .count()
}

/// The number of reconciles the running operator has finished (its duration histogram's
/// count), 0 before the first.
fn reconciles_finished(h: &Harness) -> u64 {
    let text = h.metrics().encode().unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("upstart_reconcile_duration_seconds_count{controller=\"helmrelease\"} ")
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_job_deleted_right_after_success_is_not_run_again_after_a_restart() {
    let mut h = Harness::start().await;
    // Its pre-install Job is a migration: once it succeeded it must never run again for the
    // same inputs, even once its object is gone.
    h.create(
        "migrated",
        json!({"chart": "test/crashy", "version": "0.1.0", "values": {"postAfter": "3s"}}),
    )
    .await;
    let api = h.releases();
    eventually(
        "status recording the pre-install hook's success",
        || async {
            let status = api.get("migrated").await.ok()?.status?;
            let hooks: Vec<(&str, &str)> = status
                .hooks
                .iter()
                .map(|h| (h.object.as_str(), h.phase.as_str()))
                .collect();
            (hooks
                == [
                    ("Job/migrated-pre", "Succeeded"),
                    ("Job/migrated-post", "Running"),
                ])
            .then_some(())
        },
    )
    .await;
    // What the TTL controller does to a Job with `ttlSecondsAfterFinished: 0`.
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), NS);
    jobs.delete("migrated-pre", &DeleteParams::background())
        .await
        .unwrap();
    eventually("the pre-install Job to be gone", || async {
        jobs.get_opt("migrated-pre")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    h.kill().await;
    h.run_operator(h.config());
    let release = h.ready("migrated").await;

    // The chart's hooks keep the default policy (before-hook-creation): a pre-install Job run
    // again would still be there.
    assert!(
        jobs.get_opt("migrated-pre").await.unwrap().is_none(),
        "the pre-install hook ran again"
    );
    let hooks: Vec<(String, String)> = release
        .status
        .unwrap()
        .hooks
        .iter()
        .map(|h| (h.object.clone(), h.phase.clone()))
        .collect();
    assert_eq!(
        hooks,
        [
            ("Job/migrated-pre".to_owned(), "Succeeded".to_owned()),
            ("Job/migrated-post".to_owned(), "Succeeded".to_owned())
        ]
    );

    // New inputs are a new run: the migration runs for them.
    api.patch(
        "migrated",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"values": {"postAfter": "100ms"}}})),
    )
    .await
    .unwrap();
    h.ready("migrated").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_ready_release_is_not_rendered_again_after_a_restart() {
    let mut h = Harness::boot().await;
    let (helm, log) = counting_helm(h.cluster.dir());
    let config = Config {
        helm_path: helm.clone(),
        ..h.config()
    };
    h.run_operator(config.clone());
    h.create(
        "steady",
        json!({"chart": "test/random", "version": "0.1.0"}),
    )
    .await;
    h.ready("steady").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let token = |cm: ConfigMap| cm.data.unwrap().remove("token").unwrap();
    let generated = token(config_maps.get("steady-generated").await.unwrap());
    let rendered = renders(&log);
    assert!(rendered >= 1, "the install rendered");

    for restart in ["a graceful stop", "a crash"] {
        let before = api_get(&h, "steady").await;
        if restart == "a crash" {
            h.kill().await;
        } else {
            h.shut_down().await;
        }
        h.run_operator(config.clone());
        // The new process looks at the release once at start (its watch lists it).
        eventually(
            "the restarted operator's first reconcile to end",
            || async { (reconciles_finished(&h) >= 1).then_some(()) },
        )
        .await;
        assert_eq!(renders(&log), rendered, "rendered again after {restart}");
        assert_eq!(
            token(config_maps.get("steady-generated").await.unwrap()),
            generated,
            "the generated value rotated after {restart}"
        );
        let after = api_get(&h, "steady").await;
        assert_eq!(
            after.status, before.status,
            "status unchanged after {restart}"
        );
    }
    h.stop().await;
}

async fn api_get(h: &Harness, name: &str) -> HelmRelease {
    h.releases().get(name).await.unwrap()
}
