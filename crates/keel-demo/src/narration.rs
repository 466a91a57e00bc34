//! What the game day says: scene titles, one- or two-line narration, findings, verdicts,
//! and long documents (the timeline).
//!
//! With plain output every line is printed as it is said. Under the live view the lines
//! go to its narration pane instead, and the whole transcript (documents included) is
//! printed once the view has closed, so nothing said is lost from the scrollback.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Lines kept for the live view's narration pane; older ones are only in the transcript.
const RECENT_LINES: usize = 200;

/// How a line is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// A scene title.
    Title,
    /// Narration.
    Say,
    /// A finding, a number, a command: indented.
    Detail,
    /// An expectation that held.
    Good,
    /// An expectation that did not hold.
    Bad,
}

/// One line said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// How it is shown.
    pub tone: Tone,
    /// The text (one line).
    pub text: String,
}

impl Line {
    /// The line as plain text (what `--no-tui` prints).
    pub fn plain(&self) -> String {
        match self.tone {
            Tone::Title => format!("\n== {} ==", self.text),
            Tone::Say => self.text.clone(),
            Tone::Detail => format!("    {}", self.text),
            Tone::Good => format!("  ok    {}", self.text),
            Tone::Bad => format!("  FAIL  {}", self.text),
        }
    }
}

#[derive(Debug, Default)]
struct Said {
    lines: Vec<Line>,
    /// Index in `lines` of each document's position, and its text.
    documents: Vec<(usize, String)>,
}

/// The game day's voice; clones share one transcript.
#[derive(Debug, Clone)]
pub struct Narrator {
    said: Arc<Mutex<Said>>,
    echo: Arc<AtomicBool>,
}

impl Narrator {
    /// A narrator that prints every line at once (`echo`), or keeps them for the live view.
    pub fn new(echo: bool) -> Narrator {
        Narrator {
            said: Arc::new(Mutex::new(Said::default())),
            echo: Arc::new(AtomicBool::new(echo)),
        }
    }

    /// Whether lines are printed as they are said.
    pub fn echoes(&self) -> bool {
        self.echo.load(Ordering::Relaxed)
    }

    /// Prints everything said so far and every line from now on (the live view is gone).
    pub fn start_echo(&self) {
        let said = self.said();
        if !self.echo.swap(true, Ordering::Relaxed) {
            print!("{}", transcript_of(&said));
        }
    }

    /// A scene title.
    pub fn title(&self, text: impl Into<String>) {
        self.push(Tone::Title, text.into());
    }

    /// Narration.
    pub fn say(&self, text: impl Into<String>) {
        self.push(Tone::Say, text.into());
    }

    /// An indented detail.
    pub fn detail(&self, text: impl Into<String>) {
        self.push(Tone::Detail, text.into());
    }

    /// An expectation's verdict.
    pub fn verdict(&self, met: bool, text: impl Into<String>) {
        self.push(if met { Tone::Good } else { Tone::Bad }, text.into());
    }

    /// A long document (Markdown): printed now with plain output, after the view otherwise.
    pub fn document(&self, text: impl Into<String>) {
        let text = text.into();
        let mut said = self.said();
        if self.echoes() {
            println!("{text}");
        }
        let at = said.lines.len();
        said.documents.push((at, text));
    }

    /// The most recent lines, oldest first (for the narration pane).
    pub fn recent(&self, count: usize) -> Vec<Line> {
        let said = self.said();
        let count = count.min(RECENT_LINES);
        said.lines[said.lines.len().saturating_sub(count)..].to_vec()
    }

    /// Everything said, documents in place, as plain text.
    pub fn transcript(&self) -> String {
        transcript_of(&self.said())
    }

    fn push(&self, tone: Tone, text: String) {
        let mut said = self.said();
        for part in text.lines() {
            let line = Line {
                tone,
                text: part.to_owned(),
            };
            if self.echoes() {
                println!("{}", line.plain());
            }
            said.lines.push(line);
        }
    }

    fn said(&self) -> MutexGuard<'_, Said> {
        self.said.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn transcript_of(said: &Said) -> String {
    let mut out = String::new();
    let mut documents = said.documents.iter().peekable();
    for (index, line) in said.lines.iter().enumerate() {
        while let Some((_, text)) = documents.next_if(|(at, _)| *at == index) {
            out.push_str(text);
            out.push('\n');
        }
        out.push_str(&line.plain());
        out.push('\n');
    }
    for (_, text) in documents {
        out.push_str(text);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transcript_keeps_order_and_documents_in_place() {
        let narrator = Narrator::new(false);
        narrator.title("Scene 3");
        narrator.say("the timeline:");
        narrator.document("# Timeline\n- 10:00 apply");
        narrator.verdict(true, "it has the rollback");
        narrator.verdict(false, "it has the alert");
        let transcript = narrator.transcript();
        let timeline = transcript.find("# Timeline").expect("document");
        let verdict = transcript
            .find("ok    it has the rollback")
            .expect("verdict");
        assert!(transcript.find("the timeline:").expect("say") < timeline);
        assert!(timeline < verdict);
        assert!(transcript.contains("FAIL  it has the alert"));
        assert_eq!(narrator.recent(2).len(), 2);
        assert_eq!(narrator.recent(2)[1].tone, Tone::Bad);
    }
}
