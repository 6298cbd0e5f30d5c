//! A kube-runtime Controller with the `finalizer` helper against the control plane: the
//! pattern the project's operators use (watch, reconcile, finalizer add/cleanup/remove, status
//! written through the status subresource).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use serde_json::json;

use common::*;

const FINALIZER: &str = "example.com/cleanup";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ReconcileError(String);

struct Ctx {
    api: Api<DynamicObject>,
    cleaned: tokio::sync::mpsc::UnboundedSender<String>,
}

async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let api = ctx.api.clone();
    finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(w) => {
                let name = w.metadata.name.clone().unwrap();
                let status = json!({"status": {"phase": "Ready"}});
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                    .await
                    .map_err(|e| ReconcileError(e.to_string()))?;
                Ok(Action::await_change())
            }
            Finalizer::Cleanup(w) => {
                let _ = ctx.cleaned.send(w.metadata.name.clone().unwrap());
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e: kube::runtime::finalizer::Error<ReconcileError>| ReconcileError(e.to_string()))
}

fn error_policy(_: Arc<DynamicObject>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

#[tokio::test]
async fn a_controller_with_a_finalizer_reconciles_and_cleans_up_on_deletion() {
    let cp = control_plane();
    let client = cp.client();
    let ws = widgets(&client, "default").await;
    let (tx, mut cleaned) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        api: ws.clone(),
        cleaned: tx,
    });
    let controller =
        Controller::new_with(ws.clone(), watcher::Config::default(), widget_resource())
            .run(reconcile, error_policy, ctx)
            .for_each(|r| async move {
                if let Err(e) = r {
                    eprintln!("controller: {e:?}");
                }
            });
    let handle = tokio::spawn(controller);

    ws.create(&PostParams::default(), &widget("managed", 1))
        .await
        .unwrap();
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let w = ws.get("managed").await.unwrap();
            if w.data["status"]["phase"] == "Ready" {
                break w;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("reconciled within 10s");
    assert_eq!(ready.metadata.finalizers, Some(vec![FINALIZER.to_string()]));

    ws.delete("managed", &DeleteParams::default())
        .await
        .unwrap();
    let name = tokio::time::timeout(Duration::from_secs(10), cleaned.recv())
        .await
        .expect("cleanup ran")
        .unwrap();
    assert_eq!(name, "managed");
    tokio::time::timeout(Duration::from_secs(10), async {
        while ws.get_opt("managed").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the object is gone once the finalizer is removed");
    handle.abort();
}
