//! Stopping: a cloneable shutdown handle that fires on SIGTERM / Ctrl-C or on request, and can
//! be handed to kube-runtime's `Controller::graceful_shutdown_on`.

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// Resolves when the process receives SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}

/// A request to stop, shared by everything that must stop together. Cheap to clone; clones
/// share the state. A [`child`](Shutdown::child) also fires when its parent does, but can be
/// fired alone (the leader elector stops the work that way when the leadership is lost).
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A shutdown that fires only when [`trigger`](Shutdown::trigger)ed.
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown that fires on SIGTERM or Ctrl-C (see [`shutdown_signal`]). Spawns a task, so
    /// it must be called inside a Tokio runtime.
    pub fn on_signal() -> Self {
        let shutdown = Self::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown_signal() => trigger.trigger(),
                () = trigger.wait() => {}
            }
        });
        shutdown
    }

    /// Fires this shutdown (and its children).
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether it has fired.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// A future resolving once it has fired; `Send + Sync + 'static`, as
    /// `Controller::graceful_shutdown_on` requires.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        self.token.clone().cancelled_owned()
    }

    /// A shutdown that fires with this one, or alone.
    pub fn child(&self) -> Self {
        Shutdown {
            token: self.token.child_token(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_fires_with_its_parent_but_not_the_other_way_round() {
        let parent = Shutdown::new();
        let child = parent.child();
        let other_child = parent.child();
        other_child.trigger();
        assert!(!parent.is_triggered());
        assert!(!child.is_triggered());
        parent.trigger();
        child.wait().await;
        assert!(child.is_triggered());
    }
}
