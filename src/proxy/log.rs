//! Where the proxy's log lines go: stderr through `tracing` in production, a capture in tests.
//!
//! Every line the proxy writes passes through one [`LogSink`], so a test can check that no
//! secret, code, verifier or token ever reaches the log (LOG-1, PROXY-10).

use std::sync::Mutex;
use tracing::Level;

/// Receives every log line the proxy writes (access lines, alerts, startup notes).
pub trait LogSink: Send + Sync + 'static {
    /// Writes one line at `level`. Lines never contain a secret.
    fn write(&self, level: Level, line: &str);
}

/// Forwards lines to `tracing` (target `authdeck::proxy`); the CLI installs a stderr subscriber.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

impl LogSink for TracingSink {
    fn write(&self, level: Level, line: &str) {
        match level {
            Level::ERROR => tracing::error!(target: "authdeck::proxy", "{line}"),
            Level::WARN => tracing::warn!(target: "authdeck::proxy", "{line}"),
            Level::INFO => tracing::info!(target: "authdeck::proxy", "{line}"),
            Level::DEBUG => tracing::debug!(target: "authdeck::proxy", "{line}"),
            Level::TRACE => tracing::trace!(target: "authdeck::proxy", "{line}"),
        }
    }
}

/// Keeps every line in memory, for tests.
#[derive(Debug, Default)]
pub struct CaptureSink {
    lines: Mutex<Vec<(Level, String)>>,
}

impl CaptureSink {
    /// A copy of the lines written so far.
    pub fn lines(&self) -> Vec<(Level, String)> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl LogSink for CaptureSink {
    fn write(&self, level: Level, line: &str) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push((level, line.to_owned()));
        }
    }
}

/// Keeps only characters that are safe in a `key=value` log line: an upstream error code or a
/// client name is printed as is when it is made of `[A-Za-z0-9_.-]`, otherwise replaced, so a
/// hostile server cannot forge log lines or smuggle data into them.
pub(crate) fn log_word(text: &str) -> &str {
    let clean = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if clean { text } else { "(unprintable)" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_word_keeps_codes_and_drops_junk() {
        assert_eq!(log_word("invalid_grant"), "invalid_grant");
        assert_eq!(log_word("bad\nline status=200"), "(unprintable)");
        assert_eq!(log_word(""), "(unprintable)");
        assert_eq!(log_word(&"a".repeat(65)), "(unprintable)");
    }

    #[test]
    fn capture_keeps_lines() {
        let sink = CaptureSink::default();
        sink.write(Level::INFO, "one");
        sink.write(Level::ERROR, "two");
        assert_eq!(
            sink.lines(),
            vec![(Level::INFO, "one".into()), (Level::ERROR, "two".into())]
        );
    }
}
