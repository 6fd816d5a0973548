//! The thinking of reasoning models written into the reply's content as `<think>…</think>`
//! (Qwen3, DeepSeek-R1 distills on llama.cpp and Ollama), split from the reply as it streams:
//! the thinking becomes [`StreamEvent::Thinking`], the rest [`StreamEvent::Delta`]. Only a
//! reply that *starts* with `<think>` (after white space) is split, so a reply that merely
//! mentions the tag later is left as it is.

use std::collections::VecDeque;

use super::StreamEvent;

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

#[derive(Debug, Default, PartialEq, Eq)]
enum State {
    /// Nothing but white space seen yet.
    #[default]
    Start,
    Thinking,
    /// After the thinking, or a reply without any: passed through.
    Answer,
    /// Just after `</think>`: the line breaks before the answer are dropped.
    AfterThinking,
}

/// Splits content deltas; tags cut across deltas are held back until they can be told apart.
#[derive(Debug, Default)]
pub struct ThinkSplitter {
    state: State,
    pending: String,
}

impl ThinkSplitter {
    pub fn push(&mut self, text: &str, out: &mut VecDeque<StreamEvent>) {
        self.pending.push_str(text);
        loop {
            match self.state {
                State::Start => {
                    let trimmed = self.pending.trim_start();
                    if let Some(rest) = trimmed.strip_prefix(OPEN) {
                        self.pending = rest.to_owned();
                        self.state = State::Thinking;
                    } else if OPEN.starts_with(trimmed) {
                        return; // empty, white space or the start of the tag: wait
                    } else {
                        self.state = State::Answer;
                    }
                }
                State::Thinking => match self.pending.find(CLOSE) {
                    Some(at) => {
                        let thought = self.pending[..at].to_owned();
                        self.pending.drain(..at + CLOSE.len());
                        if !thought.is_empty() {
                            out.push_back(StreamEvent::Thinking(thought));
                        }
                        self.state = State::AfterThinking;
                    }
                    None => {
                        // Keep back what could be the start of `</think>`.
                        let keep = partial_suffix(&self.pending, CLOSE);
                        let cut = self.pending.len() - keep;
                        if cut > 0 {
                            let thought: String = self.pending.drain(..cut).collect();
                            out.push_back(StreamEvent::Thinking(thought));
                        }
                        return;
                    }
                },
                State::AfterThinking => {
                    let trimmed = self.pending.trim_start();
                    if trimmed.is_empty() {
                        self.pending.clear();
                        return;
                    }
                    self.pending = trimmed.to_owned();
                    self.state = State::Answer;
                }
                State::Answer => {
                    if !self.pending.is_empty() {
                        out.push_back(StreamEvent::Delta(std::mem::take(&mut self.pending)));
                    }
                    return;
                }
            }
        }
    }

    /// The stream ended: what is held back goes out as what it was.
    pub fn finish(&mut self, out: &mut VecDeque<StreamEvent>) {
        let rest = std::mem::take(&mut self.pending);
        if rest.is_empty() {
            return;
        }
        match self.state {
            State::Thinking => out.push_back(StreamEvent::Thinking(rest)),
            State::AfterThinking => {}
            State::Start | State::Answer => out.push_back(StreamEvent::Delta(rest)),
        }
    }
}

/// Length of the longest end of `text` that is a beginning of `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|n| text.is_char_boundary(text.len() - n) && tag.starts_with(&text[text.len() - n..]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pieces: &[&str]) -> (String, String) {
        let mut s = ThinkSplitter::default();
        let mut out = VecDeque::new();
        for p in pieces {
            s.push(p, &mut out);
        }
        s.finish(&mut out);
        let (mut thinking, mut answer) = (String::new(), String::new());
        for e in out {
            match e {
                StreamEvent::Thinking(t) => thinking.push_str(&t),
                StreamEvent::Delta(d) => answer.push_str(&d),
                other => panic!("unexpected {other:?}"),
            }
        }
        (thinking, answer)
    }

    #[test]
    fn thinking_at_the_start_is_split_from_the_answer_whatever_the_pieces() {
        let whole = "<think>\nThe user wants a table.\n</think>\n\n| a |\n|---|\n| 1 |";
        let expected = (
            "\nThe user wants a table.\n".to_owned(),
            "| a |\n|---|\n| 1 |".to_owned(),
        );
        assert_eq!(split(&[whole]), expected);
        // Every way of cutting it into two pieces, tags cut in the middle included.
        for i in 1..whole.len() {
            if whole.is_char_boundary(i) {
                assert_eq!(split(&[&whole[..i], &whole[i..]]), expected, "cut at {i}");
            }
        }
        let chars: Vec<String> = whole.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(split(&refs), expected, "one character at a time");
    }

    #[test]
    fn a_reply_without_thinking_passes_through_untouched() {
        assert_eq!(
            split(&["Hello", " <think> is a tag"]).1,
            "Hello <think> is a tag"
        );
        assert_eq!(split(&["  ", "plain"]).1, "  plain");
        assert_eq!(split(&["<th", "at"]).1, "<that");
    }

    #[test]
    fn thinking_that_never_closes_is_all_thinking() {
        assert_eq!(
            split(&["<think>hmm", " still"]),
            ("hmm still".into(), String::new())
        );
    }
}
