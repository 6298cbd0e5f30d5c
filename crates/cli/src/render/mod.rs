//! Turning results into text: diagnostics, and the dependency graph as ASCII, DOT or Mermaid.
//!
//! Colour is written as ANSI styles and printed through anstream, which drops it when the
//! output is not a terminal or `NO_COLOR` is set.

pub mod ascii;
pub mod dot;
pub mod mermaid;

use anstyle::{AnsiColor, Style};

use crate::diagnostic::{Diagnostic, Severity};

/// Red, bold.
pub const ERROR: Style = Style::new()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)))
    .bold();
/// Yellow, bold.
pub const WARNING: Style = Style::new()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)))
    .bold();
/// Green.
pub const GOOD: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green)));
/// Dimmed.
pub const DIM: Style = Style::new().dimmed();
/// Bold.
pub const BOLD: Style = Style::new().bold();

/// `text` in `style`.
pub fn styled(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// A GitHub Actions workflow command: an annotation on the file and line.
pub fn github(d: &Diagnostic) -> String {
    fn data(s: &str) -> String {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }
    fn property(s: &str) -> String {
        data(s).replace(':', "%3A").replace(',', "%2C")
    }
    let level = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut properties = format!("file={}", property(&d.file));
    if d.line > 0 {
        properties.push_str(&format!(",line={}", d.line));
    }
    if let Some(object) = &d.object {
        let title = match &d.part {
            Some(part) => format!("{object} {part}"),
            None => object.clone(),
        };
        properties.push_str(&format!(",title={}", property(&title)));
    }
    format!("::{level} {properties}::{}", data(&d.message))
}

/// A diagnostic with its severity coloured.
pub fn diagnostic(d: &Diagnostic) -> String {
    let plain = d.to_string();
    let (word, style) = match d.severity {
        Severity::Error => (": error: ", ERROR),
        Severity::Warning => (": warning: ", WARNING),
    };
    match plain.split_once(word) {
        Some((place, rest)) => format!(
            "{}: {}: {rest}",
            styled(BOLD, place),
            styled(style, word.trim_matches([':', ' ']))
        ),
        None => plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_github_annotation_escapes_its_properties_and_message() {
        let d = Diagnostic {
            file: "svc.yaml".into(),
            line: 3,
            severity: Severity::Warning,
            object: Some("UpstartService/a".into()),
            part: Some("release b".into()),
            message: "50% done\nnext: x, y".into(),
        };
        assert_eq!(
            github(&d),
            "::warning file=svc.yaml,line=3,title=UpstartService/a release b::50%25 done%0Anext: x, y"
        );
    }
}
