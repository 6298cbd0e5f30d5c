//! The Markdown side of the docs test: the fenced code blocks of a file with the
//! `<!-- docs-test: … -->` marker on the line just before each, and `console` blocks read as
//! transcripts (`$ COMMAND` lines, then the output they show).

/// The languages of fenced blocks that hold commands. A `console` block is a transcript and is
/// run; every other shell block must say why it is not (`<!-- docs-test: skip REASON -->`).
pub const SHELL_LANGUAGES: &[&str] = &["sh", "bash", "shell", "zsh"];

/// A fenced code block of a Markdown file.
#[derive(Debug)]
pub struct Block {
    /// 1-based line of the opening fence.
    pub line: usize,
    /// The first word of the info string (`console`, `sh`, `yaml`, …); empty when there is none.
    pub lang: String,
    /// The lines between the fences, without the opening fence's indentation.
    pub body: Vec<String>,
    /// The `docs-test` marker on the line just before the opening fence.
    pub marker: Option<Marker>,
}

impl Block {
    /// A block of commands the reader types, as opposed to YAML, JSON, text output, ….
    pub fn is_shell(&self) -> bool {
        SHELL_LANGUAGES.contains(&self.lang.as_str())
    }
}

/// What the comment on the line before a block asks of the docs test.
#[derive(Debug, PartialEq, Eq)]
pub enum Marker {
    /// `<!-- docs-test: skip REASON -->`: not run, for the reason given.
    Skip(String),
    /// `<!-- docs-test: background -->`: each command is started in the background, waited
    /// for until the API server of the kubeconfig it prints answers, and stopped at the end of
    /// the file.
    Background,
}

/// One `$ COMMAND` of a transcript with what the block shows after it.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// 1-based line of the `$`.
    pub line: usize,
    /// The command as bash reads it (`\`-continued lines joined by newlines).
    pub command: String,
    /// The exit status the block expects (`? failed`, `? 2`; success when not given).
    pub status: Status,
    /// The output shown (stdout and stderr merged), or `None` when the block shows none: then
    /// only the exit status is checked.
    pub output: Option<String>,
}

/// The exit status a step expects.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Status {
    Success,
    /// Any non-zero status (`? failed`).
    Failure,
    /// This exact status (`? 2`).
    Code(i32),
}

impl Status {
    pub fn accepts(self, code: Option<i32>) -> bool {
        match self {
            Status::Success => code == Some(0),
            Status::Failure => code != Some(0),
            Status::Code(expected) => code == Some(expected),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Success => f.write_str("success (exit status 0)"),
            Status::Failure => f.write_str("a failure (a non-zero exit status)"),
            Status::Code(code) => write!(f, "exit status {code}"),
        }
    }
}

const MARKER_PREFIX: &str = "docs-test:";

/// The fenced blocks of `text`, or the problems that make the file unreadable for the docs
/// test, each starting with its 1-based line.
pub fn blocks(text: &str) -> Result<Vec<Block>, Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut problems = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let Some(fence) = Fence::open(lines[index]) else {
            if let Some(marker) = marker_text(lines[index])
                && lines.get(index + 1).and_then(|l| Fence::open(l)).is_none()
            {
                problems.push(format!(
                    "{}: `<!-- {MARKER_PREFIX} {marker} -->` must be on the line just before the \
                     opening fence of the block it is about",
                    index + 1
                ));
            }
            index += 1;
            continue;
        };
        let marker = match index.checked_sub(1).and_then(|i| marker_text(lines[i])) {
            None => None,
            Some(text) => match parse_marker(text) {
                Ok(marker) => Some(marker),
                Err(problem) => {
                    problems.push(format!("{index}: {problem}"));
                    None
                }
            },
        };
        let start = index;
        let mut body = Vec::new();
        index += 1;
        let mut closed = false;
        while index < lines.len() {
            if fence.closes(lines[index]) {
                closed = true;
                break;
            }
            body.push(fence.unindent(lines[index]).to_owned());
            index += 1;
        }
        if !closed {
            problems.push(format!(
                "{}: the code block opened here is never closed (add a line `{}`)",
                start + 1,
                fence.marker
            ));
        }
        blocks.push(Block {
            line: start + 1,
            lang: fence.lang,
            body,
            marker,
        });
        index += 1;
    }
    if problems.is_empty() {
        Ok(blocks)
    } else {
        Err(problems)
    }
}

struct Fence {
    indent: usize,
    marker: String,
    lang: String,
}

impl Fence {
    fn open(line: &str) -> Option<Fence> {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let fence_char = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
        let length = trimmed.chars().take_while(|c| *c == fence_char).count();
        if length < 3 {
            return None;
        }
        let info = trimmed[length..].trim();
        // CommonMark: the info string of a backtick fence cannot hold a backtick (that is
        // inline code).
        if fence_char == '`' && info.contains('`') {
            return None;
        }
        let lang = info.split_whitespace().next().unwrap_or_default();
        Some(Fence {
            indent,
            marker: trimmed[..length].to_owned(),
            lang: lang.trim_matches(|c| c == '{' || c == '}').to_owned(),
        })
    }

    fn closes(&self, line: &str) -> bool {
        let trimmed = line.trim();
        trimmed.starts_with(&self.marker) && trimmed.chars().all(|c| Some(c) == self.fence_char())
    }

    fn fence_char(&self) -> Option<char> {
        self.marker.chars().next()
    }

    fn unindent<'a>(&self, line: &'a str) -> &'a str {
        let spaces = line.len() - line.trim_start_matches(' ').len();
        &line[spaces.min(self.indent)..]
    }
}

/// The directive of a `<!-- docs-test: … -->` line.
fn marker_text(line: &str) -> Option<&str> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim();
    inner.strip_prefix(MARKER_PREFIX).map(str::trim)
}

fn parse_marker(text: &str) -> Result<Marker, String> {
    let (directive, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    match directive {
        "skip" if rest.trim().is_empty() => Err(format!(
            "`<!-- {MARKER_PREFIX} skip -->` needs a reason, e.g. `<!-- {MARKER_PREFIX} skip needs a \
             real cluster -->`"
        )),
        "skip" => Ok(Marker::Skip(rest.trim().to_owned())),
        "background" if rest.trim().is_empty() => Ok(Marker::Background),
        _ => Err(format!(
            "unknown marker `<!-- {MARKER_PREFIX} {text} -->`: use `skip REASON` or `background`"
        )),
    }
}

/// The steps of a `console` block: `$ COMMAND` (continued on the next lines while a line ends
/// with `\`), an optional `? failed` or `? CODE`, then the output up to the next `$ `.
pub fn transcript(block: &Block) -> Result<Vec<Step>, String> {
    let mut steps: Vec<Step> = Vec::new();
    let mut lines = block.body.iter().enumerate().peekable();
    let mut output: Vec<&str> = Vec::new();
    while let Some((offset, line)) = lines.next() {
        let line_no = block.line + 1 + offset;
        let Some(first) = command_line(line) else {
            if steps.is_empty() {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(format!(
                    "{line_no}: a `console` block is a transcript: its first line must be \
                     `$ COMMAND` (for output alone use a `text` block)"
                ));
            }
            output.push(line);
            continue;
        };
        if let Some(previous) = steps.last_mut() {
            previous.output = shown(&output);
        }
        output.clear();
        let mut command = first.to_owned();
        while command.ends_with('\\') {
            let Some((_, next)) = lines.next() else {
                return Err(format!(
                    "{line_no}: the command ends with `\\` but the block ends"
                ));
            };
            command.push('\n');
            command.push_str(next);
        }
        // A here-document's lines are the command's input, not its output.
        for delimiter in heredoc_delimiters(&command) {
            loop {
                let Some((_, next)) = lines.next() else {
                    return Err(format!(
                        "{line_no}: the here-document of the command never ends (add a line \
                         `{delimiter}`)"
                    ));
                };
                command.push('\n');
                command.push_str(next);
                if next.trim_start_matches('\t') == delimiter {
                    break;
                }
            }
        }
        let mut status = Status::Success;
        if let Some((_, next)) = lines.peek()
            && let Some(wanted) = next.strip_prefix("? ")
        {
            status = match wanted.trim() {
                "failed" => Status::Failure,
                "success" => Status::Success,
                code => Status::Code(code.parse().map_err(|_| {
                    format!(
                        "{}: `? {code}`: expected `? failed`, `? success` or `? CODE` (a number)",
                        line_no + 1 + command.matches('\n').count()
                    )
                })?),
            };
            lines.next();
        }
        steps.push(Step {
            line: line_no,
            command,
            status,
            output: None,
        });
    }
    if let Some(previous) = steps.last_mut() {
        previous.output = shown(&output);
    }
    Ok(steps)
}

/// The delimiters of the here-documents a command opens (`<<EOF`, `<<'EOF'`, `<<-EOF`), in
/// order. `<< a.outputs.B >>` expressions have a space after `<<` and are not here-documents.
fn heredoc_delimiters(command: &str) -> Vec<String> {
    let pattern = regex::Regex::new(r#"<<-?(?:'(\w+)'|"(\w+)"|(\w+))"#).expect("a valid pattern");
    command
        .lines()
        .flat_map(|line| {
            pattern
                .captures_iter(line)
                .filter(|c| !line[..c.get(0).map_or(0, |m| m.start())].ends_with('<'))
                .filter_map(|c| {
                    c.iter()
                        .skip(1)
                        .flatten()
                        .next()
                        .map(|m| m.as_str().to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn command_line(line: &str) -> Option<&str> {
    line.strip_prefix("$ ")
        .or_else(|| (line == "$").then_some(""))
}

/// The output a block shows, trailing blank lines left out; `None` when it shows nothing.
fn shown(lines: &[&str]) -> Option<String> {
    let end = lines.iter().rposition(|l| !l.trim().is_empty())? + 1;
    let mut text = lines[..end].join("\n");
    text.push('\n');
    Some(text)
}
