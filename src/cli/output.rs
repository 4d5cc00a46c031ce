//! Shared output helpers of the subcommands: timestamps, JSON lines, closed pipes, progress.
//!
//! stdout carries results; a closed stdout (`relay log dump | head`) ends the command quietly
//! with exit code 0, so every write goes through [`Out`].

use std::io::{IsTerminal, Write};
use std::time::{Duration, UNIX_EPOCH};

/// Ends a command early because stdout was closed by its reader.
#[derive(Debug, thiserror::Error)]
#[error("stdout closed")]
pub struct ClosedPipe;

/// Buffered stdout that turns a closed pipe into [`ClosedPipe`].
pub struct Out {
    stdout: std::io::BufWriter<std::io::Stdout>,
}

impl Out {
    /// A fresh buffered stdout.
    pub fn new() -> Self {
        Out {
            stdout: std::io::BufWriter::new(std::io::stdout()),
        }
    }

    /// Writes one line.
    ///
    /// # Errors
    /// [`ClosedPipe`] when the reader went away, other I/O errors as they are.
    pub fn line(&mut self, text: impl std::fmt::Display) -> anyhow::Result<()> {
        writeln!(self.stdout, "{text}").map_err(pipe_error)
    }

    /// Writes one JSON value as a line.
    ///
    /// # Errors
    /// As [`Out::line`].
    pub fn json(&mut self, value: &impl serde::Serialize) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.stdout, value)?;
        writeln!(self.stdout).map_err(pipe_error)
    }

    /// Flushes what is buffered (before waiting, e.g. in `tail --follow`).
    ///
    /// # Errors
    /// As [`Out::line`].
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.stdout.flush().map_err(pipe_error)
    }
}

impl Default for Out {
    fn default() -> Self {
        Out::new()
    }
}

fn pipe_error(error: std::io::Error) -> anyhow::Error {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(ClosedPipe)
    } else {
        anyhow::Error::new(error)
    }
}

/// RFC 3339 with microseconds, UTC, for a record timestamp.
///
/// A record's timestamp is whatever its writer put there: one past the end of year 9999
/// (which RFC 3339 cannot spell) prints raw as `<microseconds>us` instead, never a panic.
pub fn format_timestamp(timestamp_us: u64) -> String {
    if timestamp_us > TIMESTAMP_US_MAX_RFC3339 {
        return format!("{timestamp_us}us");
    }
    let time = UNIX_EPOCH + Duration::from_micros(timestamp_us);
    humantime::format_rfc3339_micros(time).to_string()
}

/// The last microsecond of year 9999, the largest timestamp RFC 3339 can spell.
pub const TIMESTAMP_US_MAX_RFC3339: u64 = 253_402_300_800 * 1_000_000 - 1;

/// Output format of the inspection commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    #[default]
    Text,
    /// One JSON object per line for programs (see docs/operations.md).
    Json,
}

/// A record-count progress bar on stderr, shown only when stderr is a terminal and not quiet.
pub fn progress_bar(quiet: bool, what: &str) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    let style =
        indicatif::ProgressStyle::with_template("{spinner} {msg} {human_pos} records ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A peer's text made safe for a terminal: control characters (C0 but newline and tab, DEL, C1,
/// so an escape sequence cannot recolour, retitle or rewrite the user's terminal) and the
/// bidirectional overrides (which can make a line read other than it is) are shown as
/// `\u{..}`; everything else is unchanged.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            shown.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            shown.push(c);
        }
    }
    std::borrow::Cow::Owned(shown)
}

/// Lines of a table with a header row, each column as wide as its widest cell (two spaces
/// between columns, no padding after the last), so the columns are labelled and line up.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        let last = cells.len().saturating_sub(1);
        for (index, cell) in cells.into_iter().enumerate() {
            text.push_str(cell);
            if index < last {
                let pad = widths[index].saturating_sub(cell.chars().count()) + 2;
                text.push_str(&" ".repeat(pad));
            }
        }
        text
    };
    let mut lines = vec![line(headers.to_vec())];
    lines.extend(
        rows.iter()
            .map(|row| line(row.iter().map(String::as_str).collect())),
    );
    lines
}

#[cfg(test)]
mod printable_tests {
    use super::printable;

    #[test]
    fn escape_sequences_and_overrides_are_shown_not_run() {
        assert_eq!(printable("plain\ttext\nline"), "plain\ttext\nline");
        assert_eq!(printable("\u{1b}[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(printable("a\u{7}b\u{9b}c"), "a\\u{7}b\\u{9b}c");
        assert_eq!(printable("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(printable("\r"), "\\u{d}");
    }
}
