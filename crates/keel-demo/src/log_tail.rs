//! The last log lines of the game day, kept in memory instead of written to the terminal.
//!
//! Keel logs every refusal, forced apply, identity mismatch and rollback — exactly what
//! the game day provokes — and those lines would tear through the live screen. The demo
//! sends them here instead (the binary points its tracing writer at [`LogTail::writer`])
//! and prints the tail only when a scene failed, where it explains why.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

/// Log lines kept (2,000 lines).
pub const LOG_TAIL_LINES: usize = 2_000;
/// Longest line kept (2,000 bytes); longer ones are cut.
const MAX_LINE_BYTES: usize = 2_000;

/// A bounded, shared buffer of the most recent log lines.
#[derive(Debug, Clone, Default)]
pub struct LogTail {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl LogTail {
    /// An empty tail.
    pub fn new() -> LogTail {
        LogTail::default()
    }

    /// A writer that appends whole lines to the tail (one per log event).
    pub fn writer(&self) -> LogTailWriter {
        LogTailWriter {
            tail: self.clone(),
            pending: Vec::new(),
        }
    }

    /// The last `count` lines, oldest first.
    pub fn last(&self, count: usize) -> Vec<String> {
        let lines = self.lines();
        lines
            .iter()
            .skip(lines.len().saturating_sub(count))
            .cloned()
            .collect()
    }

    fn push(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let mut lines = self.lines();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut line = line.to_owned();
            if line.len() > MAX_LINE_BYTES {
                let mut cut = MAX_LINE_BYTES;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
            }
            if lines.len() == LOG_TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }

    fn lines(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Collects one log event's bytes and hands them to the tail when flushed or dropped.
#[derive(Debug)]
pub struct LogTailWriter {
    tail: LogTail,
    pending: Vec<u8>,
}

impl Write for LogTailWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            self.tail.push(&self.pending);
            self.pending.clear();
        }
        Ok(())
    }
}

impl Drop for LogTailWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines_only() {
        let tail = LogTail::new();
        for n in 0..LOG_TAIL_LINES + 5 {
            let mut writer = tail.writer();
            writeln!(writer, "line {n}").expect("write");
        }
        let last = tail.last(2);
        assert_eq!(
            last,
            vec![
                format!("line {}", LOG_TAIL_LINES + 3),
                format!("line {}", LOG_TAIL_LINES + 4)
            ]
        );
        assert_eq!(tail.last(usize::MAX).len(), LOG_TAIL_LINES);
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let tail = LogTail::new();
        let mut writer = tail.writer();
        writer
            .write_all("é".repeat(MAX_LINE_BYTES).as_bytes())
            .expect("write");
        drop(writer);
        let line = &tail.last(1)[0];
        assert!(line.len() <= MAX_LINE_BYTES);
        assert!(line.chars().all(|c| c == 'é'));
    }
}
