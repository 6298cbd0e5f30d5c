//! Field errors shaped and worded like kube-apiserver's `field.Error`, and the 422 message built from them.

use std::collections::HashSet;
use std::fmt;

use serde_json::Value;

/// What kind of problem a [`FieldError`] reports; mirrors apimachinery's `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// `FieldValueNotFound`.
    NotFound,
    /// `FieldValueRequired`: a required field is missing.
    Required,
    /// `FieldValueDuplicate`: a value that must be unique is not.
    Duplicate,
    /// `FieldValueInvalid`: the value is malformed (pattern, bounds, CEL rule...).
    Invalid,
    /// `FieldValueNotSupported`: the value is not one of an enum's values.
    NotSupported,
    /// `FieldValueForbidden`.
    Forbidden,
    /// `FieldValueTooLong`: a string is longer than `maxLength`.
    TooLong,
    /// `FieldValueTooMany`: a list or map has more entries than allowed.
    TooMany,
    /// `InternalError`: the validator itself could not do its job.
    Internal,
    /// `FieldValueTypeInvalid`: the value has the wrong JSON type or format.
    TypeInvalid,
}

impl FieldErrorKind {
    /// The machine-readable reason the apiserver puts in `status.details.causes[].reason`.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotFound => "FieldValueNotFound",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Internal => "InternalError",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human text the apiserver prints for this kind ("Required value", "Invalid value", ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "Not found",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        }
    }

    /// Kinds whose message never shows the bad value.
    fn hides_value(self) -> bool {
        matches!(
            self,
            Self::Required | Self::Forbidden | Self::TooLong | Self::Internal
        )
    }
}

impl fmt::Display for FieldErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One validation failure at one field, like apimachinery's `field.Error`.
///
/// `Display` renders exactly what the apiserver prints, e.g.
/// `spec.chart: Invalid value: "x": spec.chart in body should match '^a$'`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// Field path in the apiserver's `field.Path` form (`spec.items[0].name`,
    /// `spec.releases[web]`). Empty means the apiserver's nil path, printed as `<nil>`.
    pub path: String,
    /// The kind of failure.
    pub kind: FieldErrorKind,
    /// The explanation after the value; may be empty.
    pub detail: String,
    /// The offending value as the apiserver would print it; `None` prints no value.
    pub bad_value: Option<Value>,
}

/// How to render error messages: the apiserver's exact text by default, or with values hidden
/// (for Secret and ConfigMap data) or shortened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Replace every bad value with `<redacted>`, also where a detail quotes it (format
    /// errors do). Text a CEL `messageExpression` builds is not inspected.
    pub redact: bool,
    /// Shorten rendered values longer than this many characters, ending them with
    /// `...(truncated)`. `None` prints values whole, as the apiserver does.
    pub max_value_chars: Option<usize>,
}

impl RenderOptions {
    /// Options that never show a bad value.
    #[must_use]
    pub fn redacted() -> Self {
        Self {
            redact: true,
            max_value_chars: None,
        }
    }
}

impl FieldError {
    /// Builds an error of any kind.
    #[must_use]
    pub fn new(
        path: impl Into<String>,
        kind: FieldErrorKind,
        bad_value: Option<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            kind,
            detail: detail.into(),
            bad_value,
        }
    }

    /// `field.Required(path, detail)`.
    #[must_use]
    pub fn required(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(path, FieldErrorKind::Required, None, detail)
    }

    /// `field.Invalid(path, value, detail)`.
    #[must_use]
    pub fn invalid(path: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(path, FieldErrorKind::Invalid, Some(value), detail)
    }

    /// `field.Forbidden(path, detail)`.
    #[must_use]
    pub fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(path, FieldErrorKind::Forbidden, None, detail)
    }

    /// `field.Duplicate(path, value)`.
    #[must_use]
    pub fn duplicate(path: impl Into<String>, value: Value) -> Self {
        Self::new(path, FieldErrorKind::Duplicate, Some(value), "")
    }

    /// `field.NotSupported(path, value, supported)`: the detail lists each supported value quoted.
    #[must_use]
    pub fn not_supported(path: impl Into<String>, value: Value, supported: &[String]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(path, FieldErrorKind::NotSupported, Some(value), detail)
    }

    /// `field.TooLong(path, value, max)`: the value is never shown.
    #[must_use]
    pub fn too_long(path: impl Into<String>, max: i64) -> Self {
        let detail = if max >= 0 {
            format!(
                "may not be more than {max} {}",
                if max == 1 { "byte" } else { "bytes" }
            )
        } else {
            "value is too long".to_string()
        };
        Self::new(path, FieldErrorKind::TooLong, None, detail)
    }

    /// `field.TooMany(path, actual, max)`.
    #[must_use]
    pub fn too_many(path: impl Into<String>, actual: i64, max: i64) -> Self {
        let detail = if max >= 0 {
            format!(
                "must have at most {max} {}",
                if max == 1 { "item" } else { "items" }
            )
        } else {
            "has too many items".to_string()
        };
        let value = (actual >= 0).then(|| Value::from(actual));
        Self::new(path, FieldErrorKind::TooMany, value, detail)
    }

    /// `field.TypeInvalid(path, value, detail)`.
    #[must_use]
    pub fn type_invalid(path: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(path, FieldErrorKind::TypeInvalid, Some(value), detail)
    }

    /// `field.InternalError(path, err)`.
    #[must_use]
    pub fn internal(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(path, FieldErrorKind::Internal, None, detail)
    }

    /// The message without the leading field path (the apiserver's `ErrorBody`).
    #[must_use]
    pub fn body(&self) -> String {
        self.body_with(&RenderOptions::default())
    }

    /// The body rendered with `options`.
    #[must_use]
    pub fn body_with(&self, options: &RenderOptions) -> String {
        let mut s = String::from(self.kind.as_str());
        if !self.kind.hides_value()
            && let Some(value) = &self.bad_value
        {
            s.push_str(": ");
            if options.redact {
                s.push_str("<redacted>");
            } else {
                s.push_str(&truncate(render_value(value), options.max_value_chars));
            }
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            if options.redact {
                s.push_str(&self.scrubbed_detail());
            } else {
                s.push_str(&self.detail);
            }
        }
        s
    }

    /// The whole message rendered with `options`.
    #[must_use]
    pub fn message_with(&self, options: &RenderOptions) -> String {
        format!("{}: {}", self.display_path(), self.body_with(options))
    }

    /// The path as the apiserver prints it: `<nil>` for the root.
    #[must_use]
    pub fn display_path(&self) -> &str {
        if self.path.is_empty() {
            "<nil>"
        } else {
            &self.path
        }
    }

    /// The detail with every quoted occurrence of a string bad value replaced: format errors
    /// quote the value they reject. (A CEL `messageExpression` can build its message from
    /// anything; such messages are kept as they are.)
    fn scrubbed_detail(&self) -> String {
        match &self.bad_value {
            Some(Value::String(v)) => self.detail.replace(&go_quote(v), "<redacted>"),
            _ => self.detail.clone(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.display_path(), self.body())
    }
}

impl std::error::Error for FieldError {}

fn truncate(rendered: String, max: Option<usize>) -> String {
    match max {
        Some(max) if rendered.chars().count() > max => {
            let mut short: String = rendered.chars().take(max).collect();
            short.push_str("...(truncated)");
            short
        }
        _ => rendered,
    }
}

/// Renders a bad value as Go's `ErrorBody` does: strings `%q`-quoted, numbers and booleans
/// plain, anything else as JSON.
#[must_use]
pub fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => go_quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => render_number(n),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// Formats a JSON number as Go's `%v` would print the apiserver's decoded value
/// (`int64` for integers, `float64` otherwise).
#[must_use]
pub fn render_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    go_float(n.as_f64().unwrap_or(f64::NAN))
}

/// Go's `%v` for a `float64`: the shortest representation, in exponent form when the decimal
/// exponent is below -4 or at least 21 (`strconv.FormatFloat(f, 'g', -1, 64)` rules).
#[must_use]
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, like Go's shortest formatting.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..21).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{f}");
    s
}

/// Quotes a string the way Go's `%q` / `strconv.Quote` does.
#[must_use]
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The message of the apiserver's 422 Invalid error for these field errors:
/// `HelmRelease.upstartoperators.upstart.com "x" is invalid: spec.a: Required value`, with
/// several errors in brackets separated by `, `, duplicates dropped, as `NewInvalid` does.
///
/// `qualified_kind` is `Kind.group` (just `Kind` for the core group).
#[must_use]
pub fn invalid_error_message(qualified_kind: &str, name: &str, errors: &[FieldError]) -> String {
    invalid_error_message_with(qualified_kind, name, errors, &RenderOptions::default())
}

/// [`invalid_error_message`] rendered with `options` (for example redacted).
#[must_use]
pub fn invalid_error_message_with(
    qualified_kind: &str,
    name: &str,
    errors: &[FieldError],
    options: &RenderOptions,
) -> String {
    let head = format!("{qualified_kind} {} is invalid", go_quote(name));
    let mut seen = HashSet::new();
    let messages: Vec<String> = errors
        .iter()
        .map(|e| e.message_with(options))
        .filter(|m| seen.insert(m.clone()))
        .collect();
    match messages.len() {
        0 => head,
        1 => format!("{head}: {}", messages[0]),
        _ => format!("{head}: [{}]", messages.join(", ")),
    }
}
