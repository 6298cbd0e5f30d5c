//! Docs that cannot drift: the command blocks of README.md and docs/guides/*.md are run
//! against `upstart dev`, and the output they show is compared with what the commands print.
//!
//! - A ```` ```console ```` block is a transcript: each `$ COMMAND` (continued over lines
//!   ending in `\`) runs with bash in the file's own fresh working directory, in order; the
//!   lines up to the next `$ ` are its expected output (stdout and stderr merged), compared
//!   with snapbox: `[..]` matches any text within a line, `...` alone on a line any lines,
//!   `[CWD]` the working directory, `[TIME]` an RFC 3339 time, `[AGE]` a duration such as
//!   `3s` or `2m10s`. Without output lines only the exit status is checked. `? failed` (or
//!   `? CODE`) right after the command expects a failure.
//! - `<!-- docs-test: background -->` on the line before a console block starts its commands
//!   in the background (a reader's "in another terminal"), waits until the API server of the
//!   kubeconfig they print answers and they have applied their files, and stops them (SIGTERM)
//!   at the end of the file; output they show is compared with everything they printed.
//! - Every other shell block (```` ```sh ````, `bash`, `shell`, `zsh`) must carry
//!   `<!-- docs-test: skip REASON -->` on the line before it: the test lists every block
//!   without one, so nothing stays unchecked silently.
//!
//! PATH starts with the built `upstart` and the pinned `kubectl` and `helm`; `upstart dev`
//! listens on a free port (`UPSTART_DEV_PORT=0`), so the files run side by side.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

#[path = "docs/markdown.rs"]
mod markdown;
#[path = "docs/session.rs"]
mod session;

use markdown::{Block, Marker, Status, Step, blocks, transcript};
use session::Session;
use snapbox::data::Data;
use snapbox::{Assert, Redactions};
use upstart_test_support::workspace_root;

/// The files whose command blocks are checked (paths from the workspace root).
const FILES: &[&str] = &[
    "README.md",
    "docs/guides/engineer.md",
    "docs/guides/platform-team.md",
    "docs/guides/previews-from-ci.md",
    "docs/guides/squad.md",
];

#[test]
fn readme() {
    check_file("README.md");
}

#[test]
fn engineer_guide() {
    check_file("docs/guides/engineer.md");
}

#[test]
fn platform_team_guide() {
    check_file("docs/guides/platform-team.md");
}

#[test]
fn previews_from_ci_guide() {
    check_file("docs/guides/previews-from-ci.md");
}

#[test]
fn squad_guide() {
    check_file("docs/guides/squad.md");
}

#[test]
fn every_shell_block_runs_or_says_why_not() {
    let problems: Vec<String> = FILES
        .iter()
        .flat_map(|file| unchecked(file, &read(file)))
        .collect();
    assert!(
        problems.is_empty(),
        "command blocks the docs test cannot check (make them ```console transcripts, or put \
         `<!-- docs-test: skip REASON -->` on the line before them):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checked_files_are_the_readme_and_every_guide() {
    let guides = workspace_root().join("docs/guides");
    let mut found: Vec<String> = std::fs::read_dir(&guides)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/guides/{name}"))
        .collect();
    found.push("README.md".to_owned());
    found.sort();
    let mut listed: Vec<&str> = FILES.to_vec();
    listed.sort_unstable();
    assert_eq!(
        found,
        listed,
        "every guide must be checked: add it to FILES and give it a #[test] in {}",
        file!()
    );
}

fn read(file: &str) -> String {
    std::fs::read_to_string(workspace_root().join(file))
        .unwrap_or_else(|e| panic!("reading {file}: {e}"))
}

fn check_file(file: &str) {
    if let Err(problem) = run_markdown(file, &read(file)) {
        panic!("{problem}");
    }
}

/// The problems that keep blocks of a file from being checked, as `FILE:LINE: what`.
fn unchecked(file: &str, text: &str) -> Vec<String> {
    let blocks = match blocks(text) {
        Ok(blocks) => blocks,
        Err(problems) => return problems.iter().map(|p| format!("{file}:{p}")).collect(),
    };
    let mut problems = Vec::new();
    for block in &blocks {
        let line = block.line;
        match (&block.marker, block.lang.as_str()) {
            (None, _) if block.is_shell() => problems.push(format!(
                "{file}:{line}: a ```{} block is neither run nor marked: make it a ```console \
                 transcript, or say why it cannot run here with `<!-- docs-test: skip REASON -->`",
                block.lang
            )),
            (Some(Marker::Background), lang) if lang != "console" => problems.push(format!(
                "{file}:{line}: `docs-test: background` only applies to a ```console block"
            )),
            (Some(Marker::Skip(_)), _) if !block.is_shell() && block.lang != "console" => {
                problems.push(format!(
                    "{file}:{line}: `docs-test: skip` on a ```{} block, which is never run: \
                     remove the marker",
                    block.lang
                ));
            }
            _ => {}
        }
        if block.lang == "console"
            && let Err(problem) = transcript(block)
        {
            problems.push(format!("{file}:{problem}"));
        }
    }
    problems
}

/// Runs the transcripts of one Markdown file in a session of its own; the first step that
/// does not do what the file shows ends it with a message naming FILE:LINE.
fn run_markdown(file: &str, text: &str) -> Result<(), String> {
    let blocks = blocks(text).map_err(|problems| {
        problems
            .iter()
            .map(|p| format!("{file}:{p}"))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let mut session = Session::new()?;
    let assert = assert(&session);
    let mut background_outputs: Vec<(usize, Option<String>)> = Vec::new();
    for block in blocks.iter().filter(|b| b.lang == "console") {
        let steps = transcript(block).map_err(|p| format!("{file}:{p}"))?;
        match &block.marker {
            Some(Marker::Skip(_)) => {}
            Some(Marker::Background) => {
                for step in steps {
                    session
                        .start_background(step.line, &step.command)
                        .map_err(|e| failure(file, &step, &e))?;
                    background_outputs.push((step.line, step.output));
                }
            }
            None => {
                for step in &steps {
                    run_step(&mut session, &assert, file, step)?;
                }
            }
        }
    }
    for (line, printed) in session.stop_background() {
        let expected = background_outputs
            .iter()
            .find(|(l, _)| *l == line)
            .and_then(|(_, output)| output.as_deref());
        if let Some(expected) = expected {
            compare(&assert, expected, &printed).map_err(|diff| {
                format!(
                    "{file}:{line}: what the background command printed until it was stopped \
                     differs from the output shown:\n{diff}"
                )
            })?;
        }
    }
    Ok(())
}

fn run_step(session: &mut Session, assert: &Assert, file: &str, step: &Step) -> Result<(), String> {
    let outcome = session.run(&step.command)?;
    if outcome.timed_out {
        return Err(failure(
            file,
            step,
            &format!(
                "did not finish in time (bound what it waits for, e.g. `kubectl wait --timeout=120s`); \
                 its output so far:\n{}",
                outcome.output
            ),
        ));
    }
    if !step.status.accepts(outcome.code) {
        let code = outcome.code.map_or_else(
            || "killed by a signal".to_owned(),
            |c| format!("exit status {c}"),
        );
        return Err(failure(
            file,
            step,
            &format!(
                "ended with {code}, the docs expect {}; its output:\n{}",
                step.status, outcome.output
            ),
        ));
    }
    if let Some(expected) = &step.output {
        compare(assert, expected, &outcome.output).map_err(|diff| {
            failure(
                file,
                step,
                &format!("its output differs from the one shown:\n{diff}"),
            )
        })?;
    }
    Ok(())
}

fn failure(file: &str, step: &Step, problem: &str) -> String {
    format!("{file}:{}: $ {}\n{problem}", step.line, step.command)
}

/// snapbox with the named redactions the docs may use.
fn assert(session: &Session) -> Assert {
    let mut redactions = Redactions::new();
    redactions
        .insert("[CWD]", session.work_dir().to_path_buf())
        .unwrap();
    redactions
        .insert(
            "[TIME]",
            regex::Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z").unwrap(),
        )
        .unwrap();
    redactions
        .insert(
            "[AGE]",
            regex::Regex::new(r"\b(?<redacted>\d+(?:\.\d+)?(?:ms|s|m|h|d)(?:\d+(?:ms|s|m|h))*)\b")
                .unwrap(),
        )
        .unwrap();
    Assert::new()
        .redact_with(redactions)
        .palette(snapbox::report::Palette::plain())
}

fn compare(assert: &Assert, expected: &str, actual: &str) -> Result<(), String> {
    // Trailing blank lines cannot be shown in a Markdown block: the block's are dropped when
    // it is read, so the command's are too.
    let mut actual = actual.trim_end().to_owned();
    actual.push('\n');
    assert
        .try_eq(
            Some(&"the commands' output"),
            Data::text(actual),
            Data::text(expected),
        )
        .map_err(|e| e.to_string())
}

// The harness itself: a docs test that could not fail would check nothing.

fn markdown(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

#[test]
fn a_differing_output_fails_naming_the_line_the_command_and_the_diff() {
    let text = markdown(&["# t", "", "```console", "$ echo hello", "goodbye", "```"]);
    let error = run_markdown("t.md", &text).unwrap_err();
    assert!(error.starts_with("t.md:4: $ echo hello\n"), "{error}");
    assert!(error.contains("- goodbye"), "{error}");
    assert!(error.contains("+ hello"), "{error}");
}

#[test]
fn a_failing_command_fails_unless_the_transcript_expects_it() {
    let failing = markdown(&["```console", "$ ls no-such-file", "```"]);
    let error = run_markdown("t.md", &failing).unwrap_err();
    assert!(error.starts_with("t.md:2: $ ls no-such-file\n"), "{error}");
    assert!(error.contains("ended with exit status 2"), "{error}");
    assert!(error.contains("no-such-file"), "{error}");

    let expected = markdown(&[
        "```console",
        "$ ls no-such-file",
        "? 2",
        "ls: cannot access 'no-such-file': No such file or directory",
        "$ false",
        "? failed",
        "```",
    ]);
    run_markdown("t.md", &expected).unwrap();
}

#[test]
fn exported_variables_and_the_directory_carry_over_like_in_a_terminal() {
    let text = markdown(&[
        "```console",
        "$ export GREETING=hello && mkdir sub && cd sub",
        "$ echo \"$GREETING from $PWD\"",
        "hello from [CWD]/sub",
        "```",
        "",
        "```console",
        "$ ls ../examples/environment.yaml && echo \\",
        "  continued",
        "../examples/environment.yaml",
        "continued",
        "```",
    ]);
    run_markdown("t.md", &text).unwrap();
}

#[test]
fn a_here_document_is_part_of_the_command() {
    let text = markdown(&[
        "```console",
        "$ cat > values.yaml <<'EOF'",
        "url: << a.outputs.URL >>",
        "$ not a command",
        "EOF",
        "$ wc -l <values.yaml",
        "2",
        "```",
    ]);
    run_markdown("t.md", &text).unwrap();
}

#[test]
fn wildcards_and_named_redactions_match_what_varies() {
    let text = markdown(&[
        "```console",
        "$ printf 'a\\nReady in 3s for 2m10s\\nexpires at 2026-11-24T08:28:24Z\\nport 41234\\nz\\n'",
        "...",
        "Ready in [AGE] for [AGE]",
        "expires at [TIME]",
        "port [..]",
        "z",
        "```",
    ]);
    run_markdown("t.md", &text).unwrap();
    let wrong = text.replace("z\n```", "y\n```");
    assert!(run_markdown("t.md", &wrong).is_err());
}

#[test]
fn a_kubeconfig_or_home_of_the_person_testing_never_reaches_the_docs() {
    let text = markdown(&[
        "```console",
        "$ echo \"[${KUBECONFIG:-unset}] $HOME\"",
        "[unset] [..]/home",
        "$ command -v kubectl helm upstart",
        "[..]/bin/kubectl",
        "[..]/bin/helm",
        "[..]/bin/upstart",
        "```",
    ]);
    run_markdown("t.md", &text).unwrap();
}

#[test]
fn a_background_command_that_does_not_keep_running_fails() {
    let text = markdown(&[
        "<!-- docs-test: background -->",
        "```console",
        "$ echo starting; exit 3",
        "```",
    ]);
    let error = run_markdown("t.md", &text).unwrap_err();
    assert!(
        error.starts_with("t.md:3: $ echo starting; exit 3\n"),
        "{error}"
    );
    assert!(
        error.contains("instead of running in the background"),
        "{error}"
    );
    assert!(error.contains("starting"), "{error}");
}

#[test]
fn unmarked_shell_blocks_are_listed_with_file_and_line() {
    let text = markdown(&[
        "```sh",
        "kubectl get pods",
        "```",
        "<!-- docs-test: skip needs a real cluster -->",
        "```bash",
        "kubectl get nodes",
        "```",
        "```yaml",
        "a: 1",
        "```",
        "  ```shell",
        "  echo indented, in a list",
        "  ```",
    ]);
    let problems = unchecked("t.md", &text);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with("t.md:1: a ```sh block"),
        "{problems:#?}"
    );
    assert!(
        problems[1].starts_with("t.md:11: a ```shell block"),
        "{problems:#?}"
    );
}

#[test]
fn markers_need_a_reason_and_a_block_right_after_them() {
    let no_reason = markdown(&["<!-- docs-test: skip -->", "```sh", "x", "```"]);
    let problems = unchecked("t.md", &no_reason);
    assert!(
        problems[0].contains("t.md:1: `<!-- docs-test: skip -->` needs a reason"),
        "{problems:#?}"
    );

    let detached = markdown(&["<!-- docs-test: skip later -->", "", "```sh", "x", "```"]);
    let problems = unchecked("t.md", &detached);
    assert!(
        problems[0].starts_with(
            "t.md:1: `<!-- docs-test: skip later -->` must be on the line just before"
        ),
        "{problems:#?}"
    );

    let unknown = markdown(&[
        "<!-- docs-test: sometimes -->",
        "```console",
        "$ true",
        "```",
    ]);
    let problems = unchecked("t.md", &unknown);
    assert!(problems[0].contains("unknown marker"), "{problems:#?}");

    let misplaced = markdown(&["<!-- docs-test: background -->", "```sh", "x", "```"]);
    let problems = unchecked("t.md", &misplaced);
    assert!(
        problems[0].contains("only applies to a ```console block"),
        "{problems:#?}"
    );
}

#[test]
fn transcripts_read_continuations_statuses_and_output() {
    let text = markdown(&[
        "```console",
        "$ upstart validate \\",
        "    a.yaml",
        "? 1",
        "a.yaml:1: error",
        "",
        "$ kubectl get pods",
        "$ echo done",
        "done",
        "",
        "```",
    ]);
    let parsed = blocks(&text).unwrap();
    let block: &Block = &parsed[0];
    assert_eq!(
        transcript(block).unwrap(),
        vec![
            Step {
                line: 2,
                command: "upstart validate \\\n    a.yaml".to_owned(),
                status: Status::Code(1),
                output: Some("a.yaml:1: error\n".to_owned()),
            },
            Step {
                line: 7,
                command: "kubectl get pods".to_owned(),
                status: Status::Success,
                output: None,
            },
            Step {
                line: 8,
                command: "echo done".to_owned(),
                status: Status::Success,
                output: Some("done\n".to_owned()),
            },
        ]
    );
    let output_first = markdown(&["```console", "output", "```"]);
    let error = transcript(&blocks(&output_first).unwrap()[0]).unwrap_err();
    assert!(
        error.starts_with("2: a `console` block is a transcript"),
        "{error}"
    );
}
