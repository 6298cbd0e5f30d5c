//! Charts in git repositories (`git+https://HOST/PATH.git@DIR?ref=REF`), read with the git
//! command-line client: `git ls-remote` resolves a ref to a commit (one round trip when it has
//! not moved), `git fetch --depth 1` of that commit into a throw-away bare repository, and
//! `git archive` of the chart's directory, unpacked under the archive rules of every other
//! source and packaged as `helm package` would (honouring `.helmignore`).
//!
//! git runs with an empty environment (no system or user configuration, `HOME` a fresh
//! directory, no terminal prompt, only the repository's transport allowed) and each command is
//! killed after `limits.fetchTimeout`. Credentials never appear on a command line: HTTPS ones
//! go in an `Authorization` header configured through `GIT_CONFIG_*` environment variables and
//! scoped to the repository's URL; an SSH private key and `known_hosts` are written to files
//! in that fresh `HOME` (mode 0600) and named by ssh's options with
//! `StrictHostKeyChecking=yes` (in `GIT_SSH_COMMAND`, or, where there is no shell to run that,
//! through this binary run as git's ssh: [`exec_ssh_if_asked`]). git's own messages are cut to their first lines and scrubbed of
//! anything that looks like URL user info before they reach an error.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;
use tokio::io::AsyncReadExt as _;

use crate::{Credentials, Error, Limits};

/// A 40-digit lowercase hex SHA-1 commit name (what `ls-remote` prints).
pub(crate) fn is_commit(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Refs as git allows them in practice, stricter: letters, digits, `/`, `.`, `_`, `-`, `+`;
/// no leading `-` or `/`, no `..`, no `//`, no trailing `/` or `.lock`. Anything else (a
/// space, `~`, `^`, `:`, `?`, a glob) is refused before git sees it.
pub(crate) fn valid_ref(reference: &str) -> bool {
    !reference.is_empty()
        && reference.len() <= 255
        && !reference.starts_with(['-', '/', '.'])
        && !reference.ends_with(['/', '.'])
        && !reference.ends_with(".lock")
        && !reference.contains("..")
        && !reference.contains("//")
        && !reference.contains("/.")
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'+'))
}

/// How git authenticates to the repository.
enum Auth {
    /// `Authorization: …` for HTTPS, from `username` + `password` or `token`.
    Header(String),
    /// An SSH private key and the `known_hosts` lines the server's key must match.
    Ssh {
        private_key: String,
        known_hosts: String,
    },
}

/// One git repository charts are read from.
pub(crate) struct GitRepo {
    /// `git+https://HOST/PATH.git`, for messages and the allow-list (never with credentials).
    pub display: String,
    /// What git is given: `https://HOST/PATH.git`, `http://…` or `ssh://…`.
    url: String,
    /// `https`, `http` or `ssh`: the only transport git may use (`GIT_ALLOW_PROTOCOL`).
    scheme: &'static str,
    auth: Option<Auth>,
    limits: Limits,
}

impl std::fmt::Debug for GitRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitRepo")
            .field("url", &self.display)
            .field("auth", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

/// What one git command printed.
struct Output {
    stdout: Vec<u8>,
}

impl GitRepo {
    /// `display` is the repository as references name it (`git+SCHEME://HOST/PATH`).
    pub(crate) fn new(
        display: &str,
        credentials: Option<&Credentials>,
        limits: &Limits,
    ) -> Result<Self, Error> {
        let display = display.trim_end_matches('/').to_owned();
        let url = display
            .strip_prefix("git+")
            .ok_or_else(|| Error::Config(format!("{display}: a git repository URL starts with git+https://, git+http:// or git+ssh://")))?
            .to_owned();
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| Error::Config(format!("{display}: not a URL: {e}")))?;
        let scheme = match parsed.scheme() {
            "https" => "https",
            "http" => "http",
            "ssh" => "ssh",
            _ => {
                return Err(Error::Config(format!(
                    "{display}: a git repository URL starts with git+https://, git+http:// or git+ssh://"
                )));
            }
        };
        if parsed.password().is_some() || (scheme != "ssh" && !parsed.username().is_empty()) {
            return Err(Error::Config(format!(
                "{}: credentials in the URL are refused; put them in the repository's credentials Secret",
                crate::redact_url(&display)
            )));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() || parsed.host_str().is_none() {
            return Err(Error::Config(format!(
                "{display}: expected git+{scheme}://HOST/PATH with no query"
            )));
        }
        let auth = credentials.and_then(|c| {
            if scheme == "ssh" {
                let private_key = c.ssh_private_key.clone()?;
                Some(Auth::Ssh {
                    private_key,
                    known_hosts: c.known_hosts.clone().unwrap_or_default(),
                })
            } else if let Some(basic) = &c.basic {
                let pair = format!("{}:{}", basic.username, basic.password);
                Some(Auth::Header(format!(
                    "Authorization: Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )))
            } else {
                c.bearer_token
                    .as_ref()
                    .map(|token| Auth::Header(format!("Authorization: Bearer {token}")))
            }
        });
        Ok(Self {
            display,
            url,
            scheme,
            auth,
            limits: limits.clone(),
        })
    }

    /// The commit `reference` (a branch, a tag, `refs/…`, or `None` for the remote's `HEAD`)
    /// points at now: one `git ls-remote`. A commit name is returned as is, without a request.
    pub(crate) async fn resolve(
        &self,
        reference: Option<&str>,
        work: &Path,
    ) -> Result<String, Error> {
        let wanted = reference.unwrap_or("HEAD");
        if is_commit(wanted) {
            return Ok(wanted.to_owned());
        }
        let home = Home::new(work, self)?;
        let peeled = format!("{wanted}^{{}}");
        let output = self
            .run(
                &home,
                &["ls-remote", "--", &self.url, wanted, &peeled],
                None,
                1 << 20,
            )
            .await?;
        let listing = String::from_utf8_lossy(&output.stdout);
        pick_ref(&listing, wanted).ok_or_else(|| Error::GitRefNotFound {
            repository: self.display.clone(),
            reference: wanted.to_owned(),
        })
    }

    /// The chart in directory `dir` of `commit`, as a packaged chart archive: its name and the
    /// archive (deterministic: the same files give the same bytes).
    pub(crate) async fn chart_archive(
        &self,
        commit: &str,
        dir: &str,
        work: &Path,
    ) -> Result<(String, Vec<u8>), Error> {
        let home = Home::new(work, self)?;
        let bare = home.path().join("repo.git");
        let bare_text = bare.to_string_lossy().into_owned();
        self.run(&home, &["init", "--bare", "-q", &bare_text], None, 1 << 16)
            .await?;
        let fetched = self
            .run(
                &home,
                &[
                    "fetch",
                    "-q",
                    "--depth=1",
                    "--no-tags",
                    "--no-write-fetch-head",
                    "--",
                    &self.url,
                    commit,
                ],
                Some(&bare),
                1 << 16,
            )
            .await;
        if let Err(error) = fetched {
            return Err(match error {
                // The server answered, and does not have it (force-pushed away and collected).
                Error::Git { ref message, .. } if message.contains("not our ref") => {
                    Error::GitRefNotFound {
                        repository: self.display.clone(),
                        reference: commit.to_owned(),
                    }
                }
                other => other,
            });
        }
        let tree = if dir.is_empty() {
            commit.to_owned()
        } else {
            format!("{commit}:{dir}")
        };
        let chart_yaml = if dir.is_empty() {
            format!("{commit}:Chart.yaml")
        } else {
            format!("{commit}:{dir}/Chart.yaml")
        };
        let at = format!("{}@{dir} at commit {commit}", self.display);
        let yaml = self
            .run(
                &home,
                &["cat-file", "blob", &chart_yaml],
                Some(&bare),
                1 << 20,
            )
            .await
            .map_err(|_| Error::InvalidArchive {
                chart: at.clone(),
                reason: format!("no Chart.yaml in directory {dir:?} (check the path after @)"),
            })?;
        let name = chart_name(&yaml.stdout).ok_or_else(|| Error::InvalidArchive {
            chart: at.clone(),
            reason: "Chart.yaml has no valid chart name".into(),
        })?;
        let prefix = format!("--prefix={name}/");
        // Headers and padding come on top of the contents, as for archives.
        let tar_limit = self
            .limits
            .max_unpacked_bytes
            .saturating_add(self.limits.max_files.saturating_mul(3 * 512))
            .saturating_add(1 << 20);
        let tar = self
            .run(
                &home,
                &["archive", "--format=tar", &prefix, &tree],
                Some(&bare),
                tar_limit,
            )
            .await
            .map_err(|e| match e {
                Error::LimitExceeded { .. } => Error::LimitExceeded {
                    what: format!("chart {name:?} in {at}"),
                    limit: self.limits.max_unpacked_bytes,
                    setting: "maxUnpackedBytes",
                },
                other => other,
            })?;
        let limits = self.limits.clone();
        let scratch = home.path().join("chart");
        tokio::task::spawn_blocking(move || package(&tar.stdout, &name, &limits, &scratch))
            .await
            .map_err(|e| Error::cache(work, std::io::Error::other(e)))?
    }

    /// Runs git with the repository's environment; stdout is read up to `limit` bytes (more
    /// is [`Error::LimitExceeded`]). A failure is an [`Error::Git`] with git's first lines.
    async fn run(
        &self,
        home: &Home,
        args: &[&str],
        git_dir: Option<&Path>,
        limit: u64,
    ) -> Result<Output, Error> {
        let mut command = tokio::process::Command::new("git");
        command
            .env_clear()
            .envs(home.env(self))
            .args(args)
            .current_dir(home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = git_dir {
            command.env("GIT_DIR", dir);
        }
        let mut child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Config(
                    "git charts need the git command-line client on the operator's PATH, and it is not there (see docs/architecture.md: the operator image and git)".into(),
                )
            } else {
                Error::cache(home.path(), e)
            }
        })?;
        let mut stdout = child.stdout.take().ok_or_else(|| {
            Error::cache(
                home.path(),
                std::io::Error::other("git's stdout is missing"),
            )
        })?;
        let mut stderr = child.stderr.take().ok_or_else(|| {
            Error::cache(
                home.path(),
                std::io::Error::other("git's stderr is missing"),
            )
        })?;
        let work = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut out_reader = (&mut stdout).take(limit + 1);
            let mut err_reader = (&mut stderr).take(1 << 20);
            let (read_out, read_err) = tokio::join!(
                out_reader.read_to_end(&mut out),
                err_reader.read_to_end(&mut err),
            );
            read_out.map_err(|e| Error::cache(home.path(), e))?;
            read_err.map_err(|e| Error::cache(home.path(), e))?;
            if out.len() as u64 > limit {
                let _ = child.start_kill();
                return Err(Error::LimitExceeded {
                    what: format!("git {} output from {}", args[0], self.display),
                    limit,
                    setting: "maxUnpackedBytes",
                });
            }
            let status = child
                .wait()
                .await
                .map_err(|e| Error::cache(home.path(), e))?;
            Ok((status, out, err))
        };
        let (status, stdout, stderr) = tokio::time::timeout(self.limits.fetch_timeout, work)
            .await
            .map_err(|_| Error::Timeout {
                url: self.display.clone(),
                timeout: self.limits.fetch_timeout,
            })??;
        if status.success() {
            return Ok(Output { stdout });
        }
        let message = scrub(&String::from_utf8_lossy(&stderr));
        Err(Error::Git {
            repository: self.display.clone(),
            transient: is_transient(&message),
            message: format!("git {} failed: {message}", args[0]),
        })
    }
}

/// A fresh, private `HOME` for one git operation, holding the SSH key files; removed on drop.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new(work: &Path, repo: &GitRepo) -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("git-")
            .tempdir_in(work)
            .map_err(|e| Error::cache(work, e))?;
        if let Some(Auth::Ssh {
            private_key,
            known_hosts,
        }) = &repo.auth
        {
            let mut key = private_key.clone();
            if !key.ends_with('\n') {
                key.push('\n');
            }
            write_private(&dir.path().join("id"), &key)?;
            write_private(&dir.path().join("known_hosts"), known_hosts)?;
        } else {
            write_private(&dir.path().join("known_hosts"), "")?;
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The whole environment git runs with (nothing is inherited but `PATH`).
    fn env(&self, repo: &GitRepo) -> Vec<(String, String)> {
        let home = self.path().to_string_lossy().into_owned();
        let mut env = vec![
            (
                "PATH".to_owned(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            ),
            ("HOME".to_owned(), home.clone()),
            ("XDG_CONFIG_HOME".to_owned(), home.clone()),
            ("GIT_CONFIG_NOSYSTEM".to_owned(), "1".to_owned()),
            ("GIT_CONFIG_GLOBAL".to_owned(), "/dev/null".to_owned()),
            ("GIT_TERMINAL_PROMPT".to_owned(), "0".to_owned()),
            ("GIT_ALLOW_PROTOCOL".to_owned(), repo.scheme.to_owned()),
            ("LC_ALL".to_owned(), "C".to_owned()),
        ];
        match &repo.auth {
            Some(Auth::Header(header)) => {
                env.push(("GIT_CONFIG_COUNT".to_owned(), "1".to_owned()));
                env.push((
                    "GIT_CONFIG_KEY_0".to_owned(),
                    format!("http.{}.extraHeader", repo.url),
                ));
                env.push(("GIT_CONFIG_VALUE_0".to_owned(), header.clone()));
            }
            Some(Auth::Ssh { .. }) | None => {}
        }
        if repo.scheme == "ssh" {
            let argv = ssh_argv(self.path(), &repo.auth, &repo.limits);
            let wrapper = std::env::current_exe().ok();
            env.extend(ssh_env(&argv, Path::new(SHELL).exists(), wrapper));
        }
        env
    }
}

/// The shell git runs `GIT_SSH_COMMAND` with.
const SHELL: &str = "/bin/sh";

/// What tells a binary it was started by git as its ssh program (see [`exec_ssh_if_asked`]):
/// the ssh command and its options, one a line.
pub const SSH_WRAPPER_ENV: &str = "UPSTART_GIT_SSH";

/// `ssh` with no configuration file, only the given key, only the given `known_hosts`, and
/// `StrictHostKeyChecking=yes`: an unknown or changed host key fails the fetch.
fn ssh_argv(home: &Path, auth: &Option<Auth>, limits: &Limits) -> Vec<String> {
    let path = |name: &str| home.join(name).to_string_lossy().into_owned();
    let mut argv: Vec<String> = [
        "ssh",
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
    ]
    .map(str::to_owned)
    .into();
    argv.push(format!("UserKnownHostsFile={}", path("known_hosts")));
    argv.extend(["-o", "GlobalKnownHostsFile=/dev/null", "-o"].map(str::to_owned));
    argv.push(format!(
        "ConnectTimeout={}",
        limits.fetch_timeout.as_secs().max(1)
    ));
    if matches!(auth, Some(Auth::Ssh { .. })) {
        argv.extend(["-o", "IdentitiesOnly=yes", "-i"].map(str::to_owned));
        argv.push(path("id"));
    }
    argv
}

/// How git is told to run `argv` for ssh. git runs `GIT_SSH_COMMAND` through the shell, and
/// the operator image has none: there, git runs this very binary as `GIT_SSH` (git passes no
/// options to it, only the host and the remote command), which [`exec_ssh_if_asked`] turns
/// into `argv` followed by git's arguments.
fn ssh_env(argv: &[String], shell: bool, wrapper: Option<PathBuf>) -> Vec<(String, String)> {
    match wrapper.filter(|_| !shell) {
        Some(wrapper) => vec![
            ("GIT_SSH".to_owned(), wrapper.to_string_lossy().into_owned()),
            ("GIT_SSH_VARIANT".to_owned(), "ssh".to_owned()),
            (SSH_WRAPPER_ENV.to_owned(), argv.join("\n")),
        ],
        None => {
            let quote = |a: &String| format!("'{}'", a.replace('\'', r"'\''"));
            let command = argv.iter().map(quote).collect::<Vec<_>>().join(" ");
            vec![("GIT_SSH_COMMAND".to_owned(), command)]
        }
    }
}

/// Called first by the binaries that fetch git charts: when git started this process as its
/// ssh program ([`SSH_WRAPPER_ENV`] set), it becomes that ssh (the same process, `exec`), with
/// git's arguments after the configured options; otherwise it returns at once.
pub fn exec_ssh_if_asked() {
    let Some(spec) = std::env::var_os(SSH_WRAPPER_ENV) else {
        return;
    };
    let spec = spec.to_string_lossy().into_owned();
    let mut argv = spec.lines();
    let program = argv.next().unwrap_or("ssh");
    let error = std::os::unix::process::CommandExt::exec(
        std::process::Command::new(program)
            .args(argv)
            .args(std::env::args_os().skip(1))
            .env_remove(SSH_WRAPPER_ENV),
    );
    eprintln!("git's ssh: cannot run {program}: {error}");
    std::process::exit(255);
}

fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| Error::cache(path, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::cache(path, e))
}

/// The commit `wanted` names in an `ls-remote` listing, in git's own order of precedence
/// (`refs/…` and `HEAD` as written, then `refs/tags/…`, then `refs/heads/…`); an annotated
/// tag gives the commit it points at (its `^{}` line).
fn pick_ref(listing: &str, wanted: &str) -> Option<String> {
    let lines: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(commit, _)| is_commit(commit))
        .collect();
    let find = |name: &str| {
        let peeled = format!("{name}^{{}}");
        lines
            .iter()
            .find(|(_, r)| *r == peeled)
            .or_else(|| lines.iter().find(|(_, r)| *r == name))
            .map(|(commit, _)| (*commit).to_owned())
    };
    let mut candidates = Vec::new();
    if wanted == "HEAD" || wanted.starts_with("refs/") {
        candidates.push(wanted.to_owned());
    }
    candidates.push(format!("refs/tags/{wanted}"));
    candidates.push(format!("refs/heads/{wanted}"));
    candidates.iter().find_map(|name| find(name))
}

/// The `name` of a `Chart.yaml`, when it is a valid chart name.
fn chart_name(yaml: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        name: Option<String>,
    }
    let named: Named = serde_yaml_ng::from_slice(yaml).ok()?;
    named.name.filter(|n| crate::reference::valid_chart_name(n))
}

/// Unpacks `git archive`'s tar under the archive rules, then packages the chart as helm
/// does (`.helmignore` honoured), so its digest depends on its files only.
fn package(
    tar: &[u8],
    name: &str,
    limits: &Limits,
    scratch: &Path,
) -> Result<(String, Vec<u8>), Error> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, tar).map_err(|e| Error::cache(scratch, e))?;
    let gz = gz.finish().map_err(|e| Error::cache(scratch, e))?;
    std::fs::create_dir_all(scratch).map_err(|e| Error::cache(scratch, e))?;
    let dir = scratch.join(name);
    // The archive-size rule is about downloads; here the unpacked limits decide.
    let unpack_limits = Limits {
        max_archive_bytes: u64::MAX,
        ..limits.clone()
    };
    crate::archive::unpack(&gz, name, &unpack_limits, &dir)?;
    let packaged =
        upstart_chart_package::package_chart(&dir).map_err(|e| Error::InvalidArchive {
            chart: name.to_owned(),
            reason: e.to_string(),
        })?;
    Ok((packaged.name, packaged.archive))
}

/// git's stderr, for an error message: its first three non-empty lines, each cut at 300
/// characters, with anything shaped like URL user info (`scheme://user:secret@`) removed.
fn scrub(stderr: &str) -> String {
    let lines: Vec<String> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .map(|line| {
            let mut line = strip_user_info(line);
            if line.len() > 300 {
                let mut cut = 300;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
                line.push('…');
            }
            line
        })
        .collect();
    if lines.is_empty() {
        "no message".into()
    } else {
        lines.join("; ")
    }
}

/// Removes `user[:password]@` after every `://` in `line`.
fn strip_user_info(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        out.push_str(&rest[..at + 3]);
        rest = &rest[at + 3..];
        let authority_end = rest
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(rest.len());
        if let Some(user_end) = rest[..authority_end].rfind('@') {
            rest = &rest[user_end + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// Whether git's message is about reaching the server (retry; during an outage the chart
/// fetched before is served) rather than an answer to believe (not found, access refused).
fn is_transient(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    let answered = [
        "not found",
        "authentication failed",
        "permission denied",
        "403",
        "401",
        "404",
        "not our ref",
        "host key verification failed",
        "could not read username",
        "not allowed",
        "does not appear to be a git repository",
    ];
    !answered.iter().any(|a| lower.contains(a))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const C: &str = "3333333333333333333333333333333333333333";

    #[test]
    fn refs_resolve_in_gits_order_with_annotated_tags_peeled() {
        let listing = format!(
            "{A}\tHEAD\n{A}\trefs/heads/main\n{B}\trefs/tags/v1\n{C}\trefs/tags/v1^{{}}\n{B}\trefs/heads/v1\n"
        );
        assert_eq!(pick_ref(&listing, "HEAD").as_deref(), Some(A));
        assert_eq!(pick_ref(&listing, "main").as_deref(), Some(A));
        assert_eq!(
            pick_ref(&listing, "v1").as_deref(),
            Some(C),
            "the tag wins, peeled"
        );
        assert_eq!(pick_ref(&listing, "refs/heads/v1").as_deref(), Some(B));
        assert_eq!(pick_ref(&listing, "gone"), None);
    }

    #[test]
    fn refs_with_shell_or_revision_syntax_are_refused() {
        for good in [
            "main",
            "v1.2.3",
            "release/1.x",
            "refs/heads/main",
            "feat_a+b",
        ] {
            assert!(valid_ref(good), "{good}");
        }
        for bad in [
            "", "-oProxy", "a..b", "main~1", "HEAD^", "a b", "x:y", "/a", "a/", "a.lock", "*",
        ] {
            assert!(!valid_ref(bad), "{bad}");
        }
    }

    #[test]
    fn git_messages_lose_url_user_info_and_are_cut_short() {
        let scrubbed = scrub(
            "\nfatal: unable to access 'https://robot:hunter2@git.example.com/r.git/': 403\nhint: a\nhint: b\nhint: c\n",
        );
        assert_eq!(
            scrubbed,
            "fatal: unable to access 'https://git.example.com/r.git/': 403; hint: a; hint: b"
        );
        assert!(scrub(&"x".repeat(1000)).chars().count() <= 301);
    }

    #[test]
    fn an_unreachable_server_is_transient_and_an_answer_is_not() {
        assert!(is_transient(
            "fatal: unable to access 'http://127.0.0.1:1/r.git/': Failed to connect to 127.0.0.1 port 1: Connection refused"
        ));
        assert!(!is_transient(
            "fatal: Authentication failed for 'http://h/r.git/'"
        ));
        assert!(!is_transient("remote: Repository not found."));
    }

    #[test]
    fn credentials_never_reach_the_command_line_and_ssh_checks_host_keys() {
        let credentials = Credentials {
            basic: Some(crate::BasicAuth {
                username: "robot".into(),
                password: "hunter2".into(),
            }),
            ..Credentials::default()
        };
        let repo = GitRepo::new(
            "git+https://git.example.com/team/charts.git",
            Some(&credentials),
            &Limits::default(),
        )
        .unwrap();
        let work = tempfile::tempdir().unwrap();
        let home = Home::new(work.path(), &repo).unwrap();
        let env = home.env(&repo);
        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(
            get("GIT_CONFIG_KEY_0").as_deref(),
            Some("http.https://git.example.com/team/charts.git.extraHeader"),
            "the header is sent to this repository only"
        );
        assert_eq!(
            get("GIT_CONFIG_VALUE_0").as_deref(),
            Some("Authorization: Basic cm9ib3Q6aHVudGVyMg==")
        );
        assert_eq!(get("GIT_CONFIG_NOSYSTEM").as_deref(), Some("1"));
        assert_eq!(get("GIT_TERMINAL_PROMPT").as_deref(), Some("0"));
        assert_eq!(get("GIT_ALLOW_PROTOCOL").as_deref(), Some("https"));
        assert!(!format!("{repo:?}").contains("hunter2"));

        let ssh = Credentials {
            ssh_private_key: Some("-----BEGIN OPENSSH PRIVATE KEY-----".into()),
            known_hosts: Some("git.example.com ssh-ed25519 AAAA".into()),
            ..Credentials::default()
        };
        let repo = GitRepo::new(
            "git+ssh://git@git.example.com/team/charts.git",
            Some(&ssh),
            &Limits::default(),
        )
        .unwrap();
        let home = Home::new(work.path(), &repo).unwrap();
        let argv = ssh_argv(home.path(), &repo.auth, &repo.limits);
        let [(key, command)] = &ssh_env(&argv, true, None)[..] else {
            panic!("one variable with a shell")
        };
        assert_eq!(key, "GIT_SSH_COMMAND");
        assert!(command.contains("'StrictHostKeyChecking=yes'"), "{command}");
        assert!(command.contains("'IdentitiesOnly=yes' '-i' '"), "{command}");
        assert!(!command.contains("BEGIN"), "{command}");
        // Without a shell (the operator image), git runs the operator itself as its ssh.
        let wrapped = ssh_env(&argv, false, Some(PathBuf::from("/usr/bin/operator")));
        let get = |key: &str| {
            wrapped
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("GIT_SSH").as_deref(), Some("/usr/bin/operator"));
        assert_eq!(get("GIT_SSH_COMMAND"), None);
        let spec = get(SSH_WRAPPER_ENV).unwrap();
        assert_eq!(
            spec.lines().collect::<Vec<_>>(),
            argv,
            "one argument a line"
        );
        assert!(!spec.contains("BEGIN"), "{spec}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(home.path().join("id"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn urls_with_credentials_or_other_schemes_are_refused() {
        for bad in [
            "git+https://robot:pw@git.example.com/r.git",
            "git+https://robot@git.example.com/r.git",
            "git+ftp://git.example.com/r.git",
            "git+ext::sh -c x",
            "https://git.example.com/r.git",
        ] {
            let error = GitRepo::new(bad, None, &Limits::default()).unwrap_err();
            assert!(!error.to_string().contains("pw@"), "{error}");
        }
    }
}
