//! SIGTERM (Kubernetes stopping the pod) fires the shutdown: checked in a child process, since
//! the signal goes to the whole process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use upstart_operator_runtime::Shutdown;

const CHILD: &str = "UPSTART_RUNTIME_SIGNAL_CHILD";
const LISTENING: &str = "listening for signals";

#[tokio::test]
async fn sigterm_fires_the_shutdown() {
    if std::env::var_os(CHILD).is_some() {
        let shutdown = Shutdown::on_signal();
        // Let the spawned task install its handlers before telling the parent.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        println!("{LISTENING}");
        tokio::time::timeout(Duration::from_secs(10), shutdown.wait())
            .await
            .expect("SIGTERM fired the shutdown");
        assert!(shutdown.is_triggered());
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "sigterm_fires_the_shutdown", "--nocapture"])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let listening = lines
        .by_ref()
        .any(|line| line.is_ok_and(|l| l.contains(LISTENING)));
    assert!(listening, "the child never got ready");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    // Drain the rest of the output so the child never blocks on a full pipe.
    for _ in lines {}
    let status = child.wait().expect("child exit");
    assert!(
        status.success(),
        "the child did not shut down cleanly: {status:?}"
    );
}
