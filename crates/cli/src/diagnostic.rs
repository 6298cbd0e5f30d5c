//! One problem found offline, printed the way compilers print theirs so that editors and CI
//! annotators pick it up: `FILE:LINE: error: KIND/NAME release KEY: problem`.

use std::fmt;

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The files cannot work as written: `upstart validate` fails.
    Error,
    /// Worth a look, but may be fine in the cluster (for instance a dependency defined
    /// elsewhere). `--strict` makes these fail too.
    Warning,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A problem at a place in a file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// The file as given on the command line.
    pub file: String,
    /// 1-based line; 0 when the problem is about the whole file.
    pub line: usize,
    /// Error or warning.
    pub severity: Severity,
    /// `KIND/NAME` of the object, when the problem is about one.
    pub object: Option<String>,
    /// The part of the object: `release KEY`, `release SERVICE/KEY`, `service NAME`.
    pub part: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// An error about the file itself (unreadable, not YAML).
    pub fn error(file: &str, line: usize, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_owned(),
            line,
            severity: Severity::Error,
            object: None,
            part: None,
            message: message.into(),
        }
    }

    /// Whether this fails `upstart validate`.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        write!(f, ": {}: ", self.severity.as_str())?;
        if let Some(object) = &self.object {
            f.write_str(object)?;
            if let Some(part) = &self.part {
                write!(f, " {part}")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diagnostic_reads_file_line_severity_object_release_and_problem() {
        let d = Diagnostic {
            file: "svc.yaml".into(),
            line: 12,
            severity: Severity::Error,
            object: Some("UpstartService/example".into()),
            part: Some("release app".into()),
            message: "dependency cycle: a -> b -> a".into(),
        };
        assert_eq!(
            d.to_string(),
            "svc.yaml:12: error: UpstartService/example release app: dependency cycle: a -> b -> a"
        );
    }

    #[test]
    fn a_file_level_problem_has_no_object() {
        let d = Diagnostic::error("gone.yaml", 0, "cannot read: not found");
        assert_eq!(d.to_string(), "gone.yaml: error: cannot read: not found");
    }
}
