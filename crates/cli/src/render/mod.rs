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
