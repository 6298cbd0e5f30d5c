//! Manifest files as the offline commands see them: every YAML document as JSON, plus where each
//! of its fields starts, so a problem can be reported as `FILE:LINE`.
//!
//! Values come from serde_yaml_ng (the parser `upstart dev` and the operators' tests use);
//! positions come from a second, event-level pass with yaml-rust2, which reports a line for
//! every key and item. When the two disagree on the number of documents (never seen in
//! practice), positions fall back to the first line of the file.

use std::path::{Path, PathBuf};

use serde_json::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::diagnostic::Diagnostic;

/// One YAML document of a file.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file, as given on the command line.
    pub file: String,
    /// The line where the document's content starts (1-based).
    pub line: usize,
    /// The document.
    pub value: Value,
    positions: Position,
}

impl Document {
    /// A document built in memory (tests): every field is on `line`.
    #[cfg(test)]
    pub fn in_memory(file: &str, line: usize, value: Value) -> Self {
        Document {
            file: file.to_owned(),
            line,
            value,
            positions: Position::Scalar { line },
        }
    }

    /// `kind`.
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    /// `apiVersion`.
    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or_default()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `metadata.namespace`, when set.
    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"]
            .as_str()
            .filter(|s| !s.is_empty())
    }

    /// `KIND/NAME`, as messages name the object.
    pub fn object(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }

    /// The line of the deepest field of `path` that exists (`spec.helmReleases.app.values`,
    /// `spec.services[0].name`, `a["dotted.key"]`); the document's line when none does.
    pub fn line_of(&self, path: &str) -> usize {
        self.positions
            .line_of(&parse_path(path))
            .unwrap_or(self.line)
    }
}

/// Larger files are refused: manifests are small, and a file this big is a mistake (or an
/// attempt to exhaust memory).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// `paths`, with each directory replaced by the `.yaml`/`.yml` files under it (sorted).
pub fn expand(paths: &[impl AsRef<Path>]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in paths {
        let path = path.as_ref();
        if !path.is_dir() {
            out.push(path.to_path_buf());
            continue;
        }
        let mut found = Vec::new();
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    found.push(path);
                }
            }
        }
        found.sort();
        out.append(&mut found);
    }
    out
}

/// Reads and parses `files` (a directory stands for its YAML files). Unreadable files and YAML
/// syntax errors become diagnostics; the documents that parsed are returned regardless, so one
/// bad file does not hide the others' problems.
pub fn read_files<P: AsRef<Path>>(files: &[P]) -> (Vec<Document>, Vec<Diagnostic>) {
    let mut documents = Vec::new();
    let mut problems = Vec::new();
    for file in expand(files) {
        let file = file.as_path();
        let name = file.display().to_string();
        if let Ok(metadata) = std::fs::metadata(file)
            && metadata.len() > MAX_FILE_BYTES
        {
            problems.push(Diagnostic::error(
                &name,
                0,
                format!(
                    "{} bytes: larger than the {MAX_FILE_BYTES} bytes a manifest file may have",
                    metadata.len()
                ),
            ));
            continue;
        }
        match std::fs::read_to_string(file) {
            Ok(text) => match parse(&name, &text) {
                Ok(mut parsed) => documents.append(&mut parsed),
                Err(problem) => problems.push(problem),
            },
            Err(e) => problems.push(Diagnostic::error(&name, 0, format!("cannot read: {e}"))),
        }
    }
    (documents, problems)
}

/// Parses every document of one file; empty documents are skipped.
pub fn parse(file: &str, text: &str) -> Result<Vec<Document>, Diagnostic> {
    let mut values = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(document).map_err(|e| {
            let line = e.location().map_or(1, |l| l.line());
            Diagnostic::error(file, line, format!("not valid YAML: {}", yaml_message(&e)))
        })?;
        values.push(value);
    }
    let (mut positions, duplicate) = document_positions(text);
    // serde_yaml_ng keeps the last of two equal keys; kubectl refuses the document.
    if let Some((key, first, second)) = duplicate {
        return Err(Diagnostic::error(
            file,
            second,
            format!("not valid YAML: mapping key {key:?} already defined at line {first}"),
        ));
    }
    if positions.len() != values.len() {
        positions = vec![Position::Scalar { line: 1 }; values.len()];
    }
    let mut documents = Vec::new();
    for (value, positions) in values.into_iter().zip(positions) {
        if value.is_null() {
            continue;
        }
        // `kind: List` (as `kubectl get -o yaml` writes) contributes its items.
        if value["kind"] == "List"
            && let Some(items) = value["items"].as_array()
        {
            for (i, item) in items.iter().enumerate() {
                let positions = positions
                    .child(&[Segment::Key("items".to_owned()), Segment::Index(i)])
                    .cloned()
                    .unwrap_or(Position::Scalar {
                        line: positions.line(),
                    });
                documents.push(Document {
                    file: file.to_owned(),
                    line: positions.line(),
                    value: item.clone(),
                    positions,
                });
            }
            continue;
        }
        documents.push(Document {
            file: file.to_owned(),
            line: positions.line(),
            value,
            positions,
        });
    }
    Ok(documents)
}

/// serde_yaml_ng appends ` at line L column C` to its messages; the line is ours to print.
fn yaml_message(error: &serde_yaml_ng::Error) -> String {
    let message = error.to_string();
    match message.find(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A map key.
    Key(String),
    /// A list index (or a map key made of digits).
    Index(usize),
}

/// Parses the paths the API server and the expression engine print: `a.b`, `a[0]`, `a[key]`,
/// `a["quoted.key"]`.
pub fn parse_path(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut chars = path.chars().peekable();
    let mut current = String::new();
    let flush = |current: &mut String, out: &mut Vec<Segment>| {
        if !current.is_empty() {
            out.push(Segment::Key(std::mem::take(current)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '.' => flush(&mut current, &mut out),
            '[' => {
                flush(&mut current, &mut out);
                let mut inner = String::new();
                if chars.peek() == Some(&'"') {
                    chars.next();
                    let mut escaped = false;
                    for c in chars.by_ref() {
                        match (escaped, c) {
                            (false, '\\') => escaped = true,
                            (false, '"') => break,
                            _ => {
                                inner.push(c);
                                escaped = false;
                            }
                        }
                    }
                    // The closing bracket.
                    chars.next();
                    out.push(Segment::Key(inner));
                } else {
                    for c in chars.by_ref() {
                        if c == ']' {
                            break;
                        }
                        inner.push(c);
                    }
                    match inner.parse::<usize>() {
                        Ok(i) => out.push(Segment::Index(i)),
                        Err(_) => out.push(Segment::Key(inner)),
                    }
                }
            }
            c => current.push(c),
        }
    }
    flush(&mut current, &mut out);
    out
}

/// Where a node of a document starts, and its children's.
#[derive(Clone, Debug)]
enum Position {
    Scalar {
        line: usize,
    },
    Sequence {
        line: usize,
        items: Vec<Position>,
    },
    /// Entries with the line of their key.
    Mapping {
        line: usize,
        entries: Vec<(String, usize, Position)>,
    },
}

impl Position {
    fn line(&self) -> usize {
        match self {
            Position::Scalar { line }
            | Position::Sequence { line, .. }
            | Position::Mapping { line, .. } => *line,
        }
    }

    /// The node at `path`, if it exists.
    fn child(&self, path: &[Segment]) -> Option<&Position> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        let child = match (self, first) {
            (Position::Mapping { entries, .. }, Segment::Key(key)) => entries
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, _, c)| c)?,
            (Position::Sequence { items, .. }, Segment::Index(i)) => items.get(*i)?,
            _ => return None,
        };
        child.child(rest)
    }

    fn line_of(&self, path: &[Segment]) -> Option<usize> {
        let (first, rest) = path.split_first()?;
        let (line, child) = match (self, first) {
            (Position::Mapping { entries, .. }, Segment::Key(key)) => entries
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, line, child)| (*line, child))?,
            (Position::Mapping { entries, .. }, Segment::Index(i)) => {
                let key = i.to_string();
                entries
                    .iter()
                    .find(|(k, _, _)| *k == key)
                    .map(|(_, line, child)| (*line, child))?
            }
            (Position::Sequence { items, .. }, Segment::Index(i)) => {
                let item = items.get(*i)?;
                (item.line(), item)
            }
            _ => return None,
        };
        Some(child.line_of(rest).unwrap_or(line))
    }
}

/// The position tree of every document of `text` (empty when it is not YAML: the value parser
/// reports that).
fn document_positions(text: &str) -> (Vec<Position>, Option<(String, usize, usize)>) {
    let mut builder = PositionBuilder::default();
    let mut parser = Parser::new_from_str(text);
    match parser.load(&mut builder, true) {
        Ok(()) => (builder.documents, builder.duplicate),
        Err(_) => (Vec::new(), None),
    }
}

#[derive(Default)]
struct PositionBuilder {
    documents: Vec<Position>,
    stack: Vec<Frame>,
    /// The first key found twice in one mapping: `(key, first line, second line)`.
    duplicate: Option<(String, usize, usize)>,
}

enum Frame {
    Sequence(usize, Vec<Position>),
    /// Entries so far, and the key (with its line) waiting for its value.
    Mapping(
        usize,
        Vec<(String, usize, Position)>,
        Option<(String, usize)>,
    ),
}

impl PositionBuilder {
    fn attach(&mut self, node: Position, key: Option<String>) {
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Sequence(_, items)) => items.push(node),
            Some(Frame::Mapping(_, entries, pending)) => match pending.take() {
                Some((key, line)) => {
                    if let Some((_, first, _)) = entries.iter().find(|(k, _, _)| *k == key)
                        && self.duplicate.is_none()
                    {
                        self.duplicate = Some((key.clone(), *first, line));
                    }
                    entries.push((key, line, node));
                }
                // A key: scalars carry their text; a complex key is matched by nobody.
                None => *pending = Some((key.unwrap_or_default(), node.line())),
            },
        }
    }
}

impl MarkedEventReceiver for PositionBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(text, ..) => self.attach(Position::Scalar { line }, Some(text)),
            Event::Alias(_) => self.attach(Position::Scalar { line }, None),
            Event::SequenceStart(..) => self.stack.push(Frame::Sequence(line, Vec::new())),
            Event::MappingStart(..) => self.stack.push(Frame::Mapping(line, Vec::new(), None)),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Sequence(line, items)) => Position::Sequence { line, items },
                    Some(Frame::Mapping(line, entries, _)) => Position::Mapping { line, entries },
                    None => return,
                };
                self.attach(node, None);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_DOCUMENTS: &str = "# a comment
apiVersion: v1
kind: ConfigMap
metadata:
  name: first
data:
  dotted.key: x
---

kind: UpstartService
metadata: {name: second}
spec:
  helmReleases:
    app:
      chart: c
      dependencies:
        - name: db
        - name: cache
";

    #[test]
    fn each_document_starts_at_its_first_field() {
        let docs = parse("f.yaml", TWO_DOCUMENTS).expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[0].line, docs[0].name()), (2, "first"));
        assert_eq!((docs[1].line, docs[1].name()), (10, "second"));
    }

    #[test]
    fn a_field_path_finds_the_line_of_its_key_or_item() {
        let docs = parse("f.yaml", TWO_DOCUMENTS).expect("parses");
        assert_eq!(docs[0].line_of("data[\"dotted.key\"]"), 7);
        assert_eq!(docs[1].line_of("metadata.name"), 11);
        assert_eq!(docs[1].line_of("spec.helmReleases.app.chart"), 15);
        assert_eq!(
            docs[1].line_of("spec.helmReleases[app].dependencies[1]"),
            18
        );
        assert_eq!(
            docs[1].line_of("spec.helmReleases.app.dependencies[1].name"),
            18
        );
    }

    #[test]
    fn a_missing_field_falls_back_to_its_deepest_existing_parent() {
        let docs = parse("f.yaml", TWO_DOCUMENTS).expect("parses");
        assert_eq!(docs[1].line_of("spec.helmReleases.app.values.x"), 14);
        assert_eq!(docs[1].line_of("nothing.here"), 10);
    }

    #[test]
    fn paths_parse_keys_indices_and_quoted_keys() {
        assert_eq!(
            parse_path("spec.a[0][\"b.c\"][key].d"),
            vec![
                Segment::Key("spec".into()),
                Segment::Key("a".into()),
                Segment::Index(0),
                Segment::Key("b.c".into()),
                Segment::Key("key".into()),
                Segment::Key("d".into()),
            ]
        );
    }

    #[test]
    fn a_yaml_syntax_error_names_file_and_line() {
        let problem = parse("bad.yaml", "a: b\nc: [d\n").expect_err("not YAML");
        assert_eq!(problem.file, "bad.yaml");
        assert!(problem.line >= 2, "{problem}");
        assert!(problem.message.starts_with("not valid YAML"), "{problem}");
    }

    #[test]
    fn a_list_contributes_its_items_with_their_lines() {
        let text = "apiVersion: v1
kind: List
items:
  - kind: A
    metadata: {name: a}
  - kind: B
    metadata:
      name: b
";
        let docs = parse("l.yaml", text).expect("parses");
        let found: Vec<(&str, usize)> = docs.iter().map(|d| (d.kind(), d.line)).collect();
        assert_eq!(found, [("A", 4), ("B", 6)]);
        assert_eq!(docs[1].line_of("metadata.name"), 8);
    }

    #[test]
    fn duplicate_keys_are_a_yaml_error() {
        let problem = parse("dup.yaml", "a: 1\nb: 2\na: 3\n").expect_err("duplicate key");
        assert_eq!(
            problem.to_string(),
            "dup.yaml:3: error: not valid YAML: mapping key \"a\" already defined at line 1"
        );
    }
}
