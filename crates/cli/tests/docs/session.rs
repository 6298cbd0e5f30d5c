//! The shell side of the docs test: one session per Markdown file, in a fresh working
//! directory that sees the repository as the docs assume (`examples/`, `charts/`, …), with
//! the built `upstart` and the pinned `kubectl` and `helm` first on PATH. Commands run one by
//! one with bash, as a reader types them; exported variables and the current directory carry
//! over from one command to the next, as in the reader's terminal.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use upstart_test_support::{helm, kubectl, workspace_root};

/// How long one command may run: a backstop, since the commands the docs show that wait are
/// bounded themselves (`kubectl wait --timeout`, `upstart dev --exit-when-ready`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(240);

/// How long a background command may take until its API server answers.
const BACKGROUND_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Entries of the repository the working directory does not link: build output, VCS data, and
/// what `upstart dev` writes into the directory it runs in.
const NOT_LINKED: &[&str] = &["target", ".git", ".upstart", ".tools"];

/// The log line `upstart dev` prints once the files it was given are applied and it keeps
/// running; a background command is ready once it appears.
const RUNNING_LINE: &str = "press Ctrl-C to stop";

pub struct Session {
    /// The reader's working directory.
    work: tempfile::TempDir,
    /// The shell state between commands, the home directory and the command logs.
    state: tempfile::TempDir,
    path: OsString,
    background: Vec<Background>,
    runs: usize,
}

/// What a command did.
pub struct Outcome {
    /// `None` when it was killed (by a signal, or after the timeout).
    pub code: Option<i32>,
    /// stdout and stderr merged, in the order they were written.
    pub output: String,
    pub timed_out: bool,
}

impl Session {
    pub fn new() -> Result<Session, String> {
        let work = tempfile::Builder::new()
            .prefix("docs-test-work-")
            .tempdir()
            .map_err(|e| format!("creating the working directory: {e}"))?;
        let state = tempfile::Builder::new()
            .prefix("docs-test-state-")
            .tempdir()
            .map_err(|e| format!("creating the state directory: {e}"))?;
        let root = workspace_root()
            .canonicalize()
            .map_err(|e| format!("finding the workspace root: {e}"))?;
        for entry in std::fs::read_dir(&root).map_err(|e| format!("listing {root:?}: {e}"))? {
            let entry = entry.map_err(|e| format!("listing {root:?}: {e}"))?;
            let name = entry.file_name();
            if NOT_LINKED.iter().any(|n| name == *n) {
                continue;
            }
            std::os::unix::fs::symlink(entry.path(), work.path().join(&name))
                .map_err(|e| format!("linking {name:?} into the working directory: {e}"))?;
        }

        let bin = state.path().join("bin");
        let home = state.path().join("home");
        for dir in [&bin, &home] {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {dir:?}: {e}"))?;
        }
        for (name, target) in [
            ("upstart", PathBuf::from(env!("CARGO_BIN_EXE_upstart"))),
            ("kubectl", kubectl()),
            ("helm", helm()),
        ] {
            let target =
                std::path::absolute(&target).map_err(|e| format!("resolving {target:?}: {e}"))?;
            std::os::unix::fs::symlink(&target, bin.join(name))
                .map_err(|e| format!("linking {name} into {bin:?}: {e}"))?;
        }
        let mut path = bin.into_os_string();
        if let Some(inherited) = std::env::var_os("PATH") {
            path.push(":");
            path.push(inherited);
        }

        let session = Session {
            work,
            state,
            path,
            background: Vec::new(),
            runs: 0,
        };
        std::fs::write(session.state_file("env"), "")
            .and_then(|()| {
                std::fs::write(
                    session.state_file("cwd"),
                    session.work.path().as_os_str().as_encoded_bytes(),
                )
            })
            .map_err(|e| format!("writing the shell state: {e}"))?;
        Ok(session)
    }

    /// The reader's working directory (`$PWD` of the first command).
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    fn state_file(&self, name: &str) -> PathBuf {
        self.state.path().join(name)
    }

    /// A bash command with the reader's environment: a clean one (no KUBECONFIG, RUST_LOG or
    /// home of the person running the tests, so nothing reaches a real cluster), the tools
    /// first on PATH, and what makes parallel files independent.
    fn bash(&self, script: String, log: &Path) -> Result<Command, String> {
        let out = File::create(log).map_err(|e| format!("creating {log:?}: {e}"))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("duplicating {log:?}: {e}"))?;
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(script)
            .current_dir(self.work.path())
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", self.state.path().join("home"))
            .env("TERM", "dumb")
            .env("NO_COLOR", "1")
            // Every `upstart dev` on a free port, so files run side by side.
            .env("UPSTART_DEV_PORT", "0")
            // scripts/demo uses the binary under test instead of building one.
            .env("UPSTART_BIN", env!("CARGO_BIN_EXE_upstart"))
            .env("DOCS_TEST_STATE", self.state.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group, so everything it starts is stopped with it.
            .process_group(0);
        for variable in ["TMPDIR", "LANG", "CARGO_HOME", "RUSTUP_HOME"] {
            if let Some(value) = std::env::var_os(variable) {
                command.env(variable, value);
            }
        }
        Ok(command)
    }

    /// The script around a command: the state of the previous commands restored before it,
    /// its own saved after it.
    fn script(command: &str, save_state: bool) -> String {
        let mut script = String::from(
            "source \"$DOCS_TEST_STATE/env\" 2>/dev/null\n\
             cd \"$(cat \"$DOCS_TEST_STATE/cwd\")\" || exit 125\n",
        );
        script.push_str(command);
        script.push('\n');
        if save_state {
            script.push_str(
                "__docs_test_status=$?\n\
                 export -p > \"$DOCS_TEST_STATE/env\"\n\
                 pwd > \"$DOCS_TEST_STATE/cwd\"\n\
                 exit $__docs_test_status\n",
            );
        }
        script
    }

    fn next_log(&mut self) -> PathBuf {
        self.runs += 1;
        self.state_file(&format!("command-{}.log", self.runs))
    }

    /// Runs one command to its end (or kills it after [`COMMAND_TIMEOUT`]).
    pub fn run(&mut self, command: &str) -> Result<Outcome, String> {
        let log = self.next_log();
        let mut child = self
            .bash(Self::script(command, true), &log)?
            .spawn()
            .map_err(|e| format!("starting bash: {e}"))?;
        let started = Instant::now();
        let (status, timed_out) = loop {
            if let Some(status) = child.try_wait().map_err(|e| format!("waiting: {e}"))? {
                // Whatever the command left running in its group goes with it.
                signal_group(child.id(), "KILL");
                break (Some(status), false);
            }
            if started.elapsed() > COMMAND_TIMEOUT {
                stop(&mut child);
                break (child.wait().ok(), true);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Outcome {
            code: status.and_then(|s: ExitStatus| s.code()),
            output: read_lossy(&log),
            timed_out,
        })
    }

    /// Starts a command in the background and waits until the API server of the kubeconfig it
    /// prints (`export KUBECONFIG=PATH`) answers and it has applied its files.
    pub fn start_background(&mut self, line: usize, command: &str) -> Result<(), String> {
        let log = self.next_log();
        let child = self
            .bash(Self::script(command, false), &log)?
            .spawn()
            .map_err(|e| format!("starting bash: {e}"))?;
        self.background.push(Background {
            child,
            log: log.clone(),
            line,
            stopped: false,
        });
        let started = Instant::now();
        let mut kubeconfig: Option<String> = None;
        loop {
            let output = read_lossy(&log);
            let background = self.background.last_mut().expect("just pushed");
            if let Ok(Some(status)) = background.child.try_wait() {
                return Err(format!(
                    "it exited ({status}) instead of running in the background; its output:\n{output}"
                ));
            }
            if kubeconfig.is_none() {
                kubeconfig = output.lines().find_map(|l| {
                    l.strip_prefix("export KUBECONFIG=")
                        .map(|p| p.trim().to_owned())
                });
            }
            if let Some(path) = &kubeconfig
                && output.contains(RUNNING_LINE)
                && self.api_answers(path)
            {
                return Ok(());
            }
            if started.elapsed() > BACKGROUND_READY_TIMEOUT {
                return Err(format!(
                    "not ready within {BACKGROUND_READY_TIMEOUT:?}: a background command must print \
                     `export KUBECONFIG=PATH` (as `upstart dev` does), serve the API of that \
                     kubeconfig and log `{RUNNING_LINE}`; its output so far:\n{output}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn api_answers(&self, kubeconfig: &str) -> bool {
        Command::new(kubectl())
            .args(["--kubeconfig", kubeconfig, "get", "--raw", "/version"])
            .env("HOME", self.state.path().join("home"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Stops the background commands (SIGTERM, as Ctrl-C would) and returns, for each, the
    /// line it was started from and everything it printed.
    pub fn stop_background(&mut self) -> Vec<(usize, String)> {
        std::mem::take(&mut self.background)
            .into_iter()
            .map(|mut background| {
                stop(&mut background.child);
                background.stopped = true;
                (background.line, read_lossy(&background.log))
            })
            .collect()
    }
}

/// A command started in the background; stopped when dropped, whatever happens to the test.
struct Background {
    child: Child,
    log: PathBuf,
    line: usize,
    stopped: bool,
}

impl Drop for Background {
    fn drop(&mut self) {
        if !self.stopped {
            stop(&mut self.child);
        }
    }
}

/// SIGTERM to the process group (what Ctrl-C in the reader's terminal amounts to), then
/// SIGKILL to whatever is left of it after a few seconds.
fn stop(child: &mut Child) {
    let pid = child.id();
    signal_group(pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        // Reaped, so that a finished shell no longer counts as a member of its group.
        let _ = child.try_wait();
        if !signal_group(pid, "0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(pid, "KILL");
    let _ = child.wait();
}

/// Sends a signal to a process group; `true` when some process received it.
fn signal_group(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([format!("-{signal}"), "--".to_owned(), format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}
