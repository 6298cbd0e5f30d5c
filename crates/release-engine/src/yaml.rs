//! YAML to JSON exactly as kubectl and Helm convert it (sigs.k8s.io/yaml: go-yaml v2's YAML 1.1
//! scalar resolution, then Go's JSON), with the expansion bounded; lives here because both the
//! planner and the HelmRelease operator (`valuesFrom`) depend on this crate.
//!
//! Plain scalars resolve as go-yaml v2 resolves them: `0755`/`0o755`/`0x1F`/`0b101`/`+1`/`1_000`
//! are integers, `y|yes|on|true` and `n|no|off|false` (lower, Capitalised or UPPER) booleans,
//! `~|null|` null, `.inf`/`.nan` floats (refused, as JSON has no such numbers), `1:20` stays a
//! string (no sexagesimal), numbers beyond 64 bits become floats or, beyond `f64`, strings.
//! Quoted scalars are strings unless tagged (`!!int "12"`). Merge keys `<<` are applied in
//! document order, as go-yaml v2 does (a merge after a key overrides it). Numbers then take the
//! shape kubectl's unstructured round trip gives them: a whole float that fits `i64` is an integer.
//!
//! Every node built counts, aliases included each time they are replayed, as does every byte of
//! every scalar: a small document that expands to gigabytes is refused at [`YamlLimits`].

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Bounds on what one conversion may build (defaults are far above real charts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlLimits {
    /// Most nodes (scalars, mappings, sequences) built, aliases counted at every replay.
    pub max_nodes: usize,
    /// Most bytes of scalar text built (keys and values), aliases counted at every replay.
    pub max_scalar_bytes: usize,
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        YamlLimits {
            max_nodes: 1_000_000,
            max_scalar_bytes: 64 * 1024 * 1024,
            max_depth: 256,
        }
    }
}

/// Why a YAML text could not be converted. Never quotes the document's content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// The text is not YAML.
    #[error("{message} at line {line} column {column}")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
    /// The YAML is well formed but kubectl would refuse it too.
    #[error("{reason} at line {line} column {column}")]
    Unsupported {
        reason: String,
        line: usize,
        column: usize,
    },
    /// Building the document would exceed a limit.
    #[error(
        "the document expands to more than {limit} {what} (aliases counted each time they are used); refused to bound memory"
    )]
    TooLarge { what: &'static str, limit: usize },
}

/// Converts every document of a YAML stream, within `limits` shared by all of them.
/// Empty documents give `Value::Null`.
pub fn to_json_documents(text: &str, limits: &YamlLimits) -> Result<Vec<Value>, YamlError> {
    Converter::new(limits.clone()).documents(text)
}

/// A conversion budget that several texts can share (one rendered manifest split in documents).
pub struct Converter {
    limits: YamlLimits,
    nodes: usize,
    bytes: usize,
}

const CORE: &str = "tag:yaml.org,2002:";

/// A parsed node before resolution: small, bounded by the input size.
enum Node {
    Scalar {
        text: String,
        quoted: bool,
        tag: Option<Tag>,
        at: Marker,
    },
    Sequence(Vec<usize>, Marker),
    Mapping(Vec<(usize, usize)>, Marker),
    Alias(usize, Marker),
}

/// A scalar as go-yaml v2 hands it to sigs.k8s.io/yaml.
#[derive(Debug, PartialEq)]
enum Go {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
}

impl Converter {
    pub fn new(limits: YamlLimits) -> Self {
        Converter {
            limits,
            nodes: 0,
            bytes: 0,
        }
    }

    /// Converts every document of `text`, counting against this converter's budget.
    pub fn documents(&mut self, text: &str) -> Result<Vec<Value>, YamlError> {
        let mut parser = Parser::new_from_str(text);
        let mut out = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        // anchor id -> node index
        let mut anchors: std::collections::HashMap<usize, usize> = Default::default();
        // open collections: (node index, pending key for mappings)
        let mut stack: Vec<(usize, Option<usize>)> = Vec::new();
        let mut root: Option<usize> = None;
        loop {
            let (event, at) = parser.next_token().map_err(|e| YamlError::Syntax {
                // yaml-rust2's messages are fixed texts but one, which quotes the character.
                message: if e.info().contains('`') {
                    "unexpected character".to_owned()
                } else {
                    e.info().to_owned()
                },
                line: e.marker().line(),
                column: e.marker().col() + 1,
            })?;
            match event {
                Event::StreamEnd => break,
                Event::DocumentStart => {
                    nodes.clear();
                    anchors.clear();
                    root = None;
                }
                Event::DocumentEnd => {
                    out.push(match root {
                        Some(root) => self.convert(&nodes, root, 0, &mut Vec::new())?,
                        None => Value::Null,
                    });
                }
                Event::Alias(id) => {
                    let target = *anchors
                        .get(&id)
                        .ok_or_else(|| unsupported("an alias names no anchor", at))?;
                    nodes.push(Node::Alias(target, at));
                    attach(&mut nodes, &mut stack, &mut root);
                }
                Event::Scalar(text, style, anchor, tag) => {
                    nodes.push(Node::Scalar {
                        text,
                        quoted: style != TScalarStyle::Plain,
                        tag,
                        at,
                    });
                    if anchor > 0 {
                        anchors.insert(anchor, nodes.len() - 1);
                    }
                    attach(&mut nodes, &mut stack, &mut root);
                }
                Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                    if stack.len() >= self.limits.max_depth {
                        return Err(YamlError::TooLarge {
                            what: "levels of nesting",
                            limit: self.limits.max_depth,
                        });
                    }
                    nodes.push(if matches!(event, Event::SequenceStart(..)) {
                        Node::Sequence(Vec::new(), at)
                    } else {
                        Node::Mapping(Vec::new(), at)
                    });
                    if anchor > 0 {
                        anchors.insert(anchor, nodes.len() - 1);
                    }
                    attach(&mut nodes, &mut stack, &mut root);
                    stack.push((nodes.len() - 1, None));
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    stack.pop();
                }
                Event::StreamStart | Event::Nothing => {}
            }
        }
        Ok(out)
    }

    fn count(&mut self, bytes: usize) -> Result<(), YamlError> {
        self.nodes += 1;
        self.bytes += bytes;
        if self.nodes > self.limits.max_nodes {
            return Err(YamlError::TooLarge {
                what: "nodes",
                limit: self.limits.max_nodes,
            });
        }
        if self.bytes > self.limits.max_scalar_bytes {
            return Err(YamlError::TooLarge {
                what: "bytes of scalar text",
                limit: self.limits.max_scalar_bytes,
            });
        }
        Ok(())
    }

    fn convert(
        &mut self,
        nodes: &[Node],
        index: usize,
        depth: usize,
        replaying: &mut Vec<usize>,
    ) -> Result<Value, YamlError> {
        if depth > self.limits.max_depth {
            return Err(YamlError::TooLarge {
                what: "levels of nesting",
                limit: self.limits.max_depth,
            });
        }
        match &nodes[index] {
            Node::Alias(target, at) => {
                if replaying.contains(target) {
                    return Err(unsupported(
                        "an anchor's value contains an alias to itself",
                        *at,
                    ));
                }
                replaying.push(*target);
                let value = self.convert(nodes, *target, depth, replaying);
                replaying.pop();
                value
            }
            Node::Scalar { .. } => {
                let go = self.scalar(nodes, index)?;
                json_of(go, scalar_at(&nodes[index]))
            }
            Node::Sequence(items, _) => {
                self.count(0)?;
                let mut array = Vec::with_capacity(items.len().min(1024));
                for item in items {
                    array.push(self.convert(nodes, *item, depth + 1, replaying)?);
                }
                Ok(Value::Array(array))
            }
            Node::Mapping(..) => {
                self.count(0)?;
                let mut map = Map::new();
                self.fill(nodes, index, depth, replaying, &mut map)?;
                Ok(Value::Object(map))
            }
        }
    }

    /// Adds the pairs of mapping `index` to `map`, merges in document order (go-yaml v2).
    fn fill(
        &mut self,
        nodes: &[Node],
        index: usize,
        depth: usize,
        replaying: &mut Vec<usize>,
        map: &mut Map<String, Value>,
    ) -> Result<(), YamlError> {
        let Node::Mapping(pairs, _) = &nodes[index] else {
            unreachable!("fill is called on mappings")
        };
        for (key, value) in pairs {
            if is_merge(&nodes[*key]) {
                self.merge(nodes, *value, depth, replaying, map)?;
                continue;
            }
            let name = self.key(nodes, *key)?;
            let value = self.convert(nodes, *value, depth + 1, replaying)?;
            map.insert(name, value);
        }
        Ok(())
    }

    fn merge(
        &mut self,
        nodes: &[Node],
        index: usize,
        depth: usize,
        replaying: &mut Vec<usize>,
        map: &mut Map<String, Value>,
    ) -> Result<(), YamlError> {
        let (target, at) = resolve_alias(nodes, index);
        match &nodes[target] {
            Node::Mapping(..) => {
                self.count(0)?;
                if replaying.contains(&target) {
                    return Err(unsupported(
                        "an anchor's value contains an alias to itself",
                        at,
                    ));
                }
                replaying.push(target);
                let result = self.fill(nodes, target, depth + 1, replaying, map);
                replaying.pop();
                result
            }
            Node::Sequence(items, _) if target == index => {
                // Earlier mappings take precedence: merged last.
                for item in items.iter().rev() {
                    let (inner, at) = resolve_alias(nodes, *item);
                    if !matches!(nodes[inner], Node::Mapping(..)) {
                        return Err(unsupported(MERGE_WANTS_MAP, at));
                    }
                    self.merge(nodes, *item, depth, replaying, map)?;
                }
                Ok(())
            }
            _ => Err(unsupported(MERGE_WANTS_MAP, at)),
        }
    }

    /// A mapping key as sigs.k8s.io/yaml turns it into a JSON key.
    fn key(&mut self, nodes: &[Node], index: usize) -> Result<String, YamlError> {
        let (target, at) = resolve_alias(nodes, index);
        if !matches!(nodes[target], Node::Scalar { .. }) {
            return Err(unsupported(
                "a mapping or sequence is used as a mapping key",
                at,
            ));
        }
        Ok(match self.scalar(nodes, target)? {
            Go::Str(s) => s,
            Go::Int(i) => i.to_string(),
            Go::Bool(b) => b.to_string(),
            Go::Float(f) => go_float32_key(f),
            Go::Null => return Err(unsupported("a null mapping key", at)),
            Go::Uint(_) => {
                return Err(unsupported("an unsigned 64-bit integer mapping key", at));
            }
        })
    }

    fn scalar(&mut self, nodes: &[Node], index: usize) -> Result<Go, YamlError> {
        let Node::Scalar {
            text,
            quoted,
            tag,
            at,
        } = &nodes[index]
        else {
            unreachable!("scalar is called on scalars")
        };
        self.count(text.len())?;
        resolve_tagged(text, *quoted, tag.as_ref()).map_err(|reason| unsupported(reason, *at))
    }
}

/// Adds the node just pushed to the open collection, or makes it the document's root.
fn attach(nodes: &mut [Node], stack: &mut [(usize, Option<usize>)], root: &mut Option<usize>) {
    let index = nodes.len() - 1;
    let Some((parent, pending)) = stack.last_mut() else {
        *root = Some(index);
        return;
    };
    match &mut nodes[*parent] {
        Node::Sequence(items, _) => items.push(index),
        Node::Mapping(pairs, _) => match pending.take() {
            None => *pending = Some(index),
            Some(key) => pairs.push((key, index)),
        },
        _ => unreachable!("only collections are open"),
    }
}

const MERGE_WANTS_MAP: &str = "a merge key (<<) needs a mapping or a sequence of mappings";

fn scalar_at(node: &Node) -> Marker {
    match node {
        Node::Scalar { at, .. }
        | Node::Alias(_, at)
        | Node::Sequence(_, at)
        | Node::Mapping(_, at) => *at,
    }
}

fn resolve_alias(nodes: &[Node], index: usize) -> (usize, Marker) {
    match &nodes[index] {
        Node::Alias(target, at) => (*target, *at),
        other => (index, scalar_at(other)),
    }
}

fn is_merge(node: &Node) -> bool {
    match node {
        Node::Scalar {
            text, quoted, tag, ..
        } => {
            text == "<<"
                && match tag {
                    None => !quoted,
                    Some(tag) => tag.handle == CORE && tag.suffix == "merge",
                }
        }
        _ => false,
    }
}

fn unsupported(reason: &str, at: Marker) -> YamlError {
    YamlError::Unsupported {
        reason: reason.to_owned(),
        line: at.line(),
        column: at.col() + 1,
    }
}

/// go-yaml v2's `resolve` with the tag check of its decoder.
fn resolve_tagged(text: &str, quoted: bool, tag: Option<&Tag>) -> Result<Go, &'static str> {
    let core = tag.filter(|t| t.handle == CORE).map(|t| t.suffix.as_str());
    match (tag, core) {
        (None, _) if quoted => Ok(Go::Str(text.to_owned())),
        (None, _) => Ok(resolve_plain(text)),
        // Local and unknown tags (`!foo`, `!`) keep the text, as go-yaml v2.
        (Some(_), None) => Ok(Go::Str(text.to_owned())),
        (Some(_), Some(suffix)) => match suffix {
            "str" => Ok(Go::Str(text.to_owned())),
            "binary" => {
                use base64::Engine;
                let compact: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|_| "a !!binary value is not valid base64")?;
                Ok(Go::Str(String::from_utf8_lossy(&bytes).into_owned()))
            }
            "int" => match resolve_plain(text) {
                go @ (Go::Int(_) | Go::Uint(_)) => Ok(go),
                _ => Err("a value tagged !!int is not an integer"),
            },
            "float" => match resolve_plain(text) {
                Go::Int(i) => Ok(Go::Float(i as f64)),
                go @ Go::Float(_) => Ok(go),
                _ => Err("a value tagged !!float is not a number"),
            },
            "bool" => match resolve_plain(text) {
                go @ Go::Bool(_) => Ok(go),
                _ => Err("a value tagged !!bool is not a boolean"),
            },
            "null" => match resolve_plain(text) {
                Go::Null => Ok(Go::Null),
                _ => Err("a value tagged !!null is not null"),
            },
            "timestamp" => {
                let digits = text.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 4 && text.as_bytes().get(4) == Some(&b'-') {
                    Ok(Go::Str(text.to_owned()))
                } else {
                    Err("a value tagged !!timestamp is not a timestamp")
                }
            }
            // `!!merge`, `!!map`, ... on a scalar: go-yaml v2 keeps the text.
            _ => Ok(Go::Str(text.to_owned())),
        },
    }
}

/// go-yaml v2 (`resolve.go`) on an untagged plain scalar.
fn resolve_plain(text: &str) -> Go {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Go::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Go::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Go::Null,
        ".nan" | ".NaN" | ".NAN" => return Go::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Go::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Go::Float(f64::NEG_INFINITY),
        _ => {}
    }
    match text.as_bytes()[0] {
        b'.' => {
            // strconv.ParseFloat: digits may be separated by single underscores.
            if underscores_ok(text)
                && let Some(f) = decimal_float(&text.replace('_', ""))
            {
                return Go::Float(f);
            }
        }
        b'0'..=b'9' | b'+' | b'-' => {
            let plain = text.replace('_', "");
            if let Some(i) = go_parse_int(&plain) {
                return Go::Int(i);
            }
            if let Some(u) = go_parse_uint(&plain) {
                return Go::Uint(u);
            }
            if let Some(f) = decimal_float(&plain) {
                return Go::Float(f);
            }
        }
        _ => {}
    }
    Go::Str(text.to_owned())
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$` parsed as Go's ParseFloat (an
/// out-of-range value is an error there, so the scalar stays a string).
fn decimal_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    if int_digits == 0 {
        if b.get(i) != Some(&b'.') {
            return None;
        }
        i += 1;
        let frac = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if frac == 0 {
            return None;
        }
        i += frac;
    } else if b.get(i) == Some(&b'.') {
        i += 1;
        i += b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return None;
        }
        i += exp;
    }
    if i != b.len() {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    f.is_finite().then_some(f)
}

/// Go's `underscoreOK` for a number without base prefix: each `_` between two digits.
fn underscores_ok(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, c)| {
        *c != b'_'
            || (i > 0 && b[i - 1].is_ascii_digit() && b.get(i + 1).is_some_and(u8::is_ascii_digit))
    })
}

/// `strconv.ParseInt(s, 0, 64)`.
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = go_parse_uint(digits)?;
    if negative {
        if magnitude <= i64::MAX as u64 + 1 {
            Some((magnitude as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// `strconv.ParseUint(s, 0, 64)`: `0x`, `0o`, `0b` prefixes and a leading `0` for octal.
fn go_parse_uint(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// A resolved scalar as JSON, in the shape kubectl's unstructured round trip gives it.
fn json_of(go: Go, at: Marker) -> Result<Value, YamlError> {
    Ok(match go {
        Go::Null => Value::Null,
        Go::Bool(b) => Value::Bool(b),
        Go::Int(i) => Value::from(i),
        Go::Str(s) => Value::String(s),
        Go::Uint(u) => number(u as f64),
        Go::Float(f) if !f.is_finite() => {
            return Err(unsupported(
                "JSON has no infinity or NaN (quote the value to keep it as a string)",
                at,
            ));
        }
        Go::Float(f) => number(f),
    })
}

/// Go prints a whole float below 1e21 as its shortest digits padded with zeros, and
/// apimachinery reads that text back as an int64 when it fits (Rust prints the same text).
fn number(f: f64) -> Value {
    if f.fract() == 0.0
        && f.abs() < 1e21
        && let Ok(i) = format!("{f}").parse::<i64>()
    {
        return Value::from(i);
    }
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// `strconv.FormatFloat(f, 'g', -1, 32)` with go-yaml's names for the specials.
fn go_float32_key(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    // Past f32's range too: Go formats at 32 bits.
    let short = f as f32;
    if short.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Go's -1 precision does.
    let sci = format!("{short:e}");
    let (mantissa, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    if !(-4..6).contains(&exp) {
        // Go's %e: at least two exponent digits, with a sign.
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{short}")
    }
}

/// How soon the parser must refuse an exponential document in the tests. The refusal
/// itself takes milliseconds; unrefused, such a document takes minutes and gigabytes, so a
/// generous bound tells the two apart even on a loaded 2-core CI machine (a 2 s bound did not).
#[cfg(test)]
pub(crate) const REFUSED_WITHIN: std::time::Duration = std::time::Duration::from_secs(20);

#[cfg(test)]
mod tests;
