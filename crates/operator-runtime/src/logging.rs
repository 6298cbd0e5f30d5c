//! Log output: JSON lines in a cluster, human-readable text on a terminal, filtered by
//! `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::Error;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for terminals.
    Text,
}

impl LogFormat {
    /// The format for an output that is (or is not) a terminal.
    pub fn for_terminal(is_terminal: bool) -> Self {
        if is_terminal {
            LogFormat::Text
        } else {
            LogFormat::Json
        }
    }

    /// The format for this process's stdout: text on a terminal, JSON otherwise.
    pub fn detect() -> Self {
        Self::for_terminal(std::io::stdout().is_terminal())
    }
}

/// The log filter: `RUST_LOG` when set and valid, else `info`.
pub fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// A subscriber writing `format` lines to `writer`, filtered by [`env_filter`].
pub fn subscriber<W>(format: LogFormat, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter())
        .with_writer(writer);
    match format {
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.with_ansi(std::io::stdout().is_terminal()).finish()),
    }
}

/// Installs the global log subscriber writing `format` lines to stdout.
///
/// Safe to call more than once (tests do): only the first call installs a subscriber; later
/// calls return `Ok(false)` and change nothing.
pub fn init_logging(format: LogFormat) -> Result<bool, Error> {
    if tracing::dispatcher::has_been_set() {
        return Ok(false);
    }
    match tracing::subscriber::set_global_default(subscriber(format, std::io::stdout)) {
        Ok(()) => Ok(true),
        // Another thread installed one between the check and here: same outcome as above.
        Err(_) if tracing::dispatcher::has_been_set() => Ok(false),
        Err(e) => Err(Error::Logging(e.to_string())),
    }
}
