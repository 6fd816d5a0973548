//! What the model sees: the system prompt, the current table (columns and a sample of rows)
//! and the newest messages that fit its context window minus the reply budget.
//!
//! Tokens are counted by the model's tokenizer (`llm::tokens`): OpenAI's BPE for OpenAI
//! models, otherwise an estimate of 1 token per 4 characters (rounded up); each message adds
//! 4 for its role and separators. For English text and tables the estimate overcounts
//! slightly, which errs on the side of fitting.

use crate::llm::{ChatMessage, Role};

pub fn estimate_tokens(text: &str) -> u32 {
    let chars = text.chars().count() as u32;
    chars.div_ceil(4) + 4
}

/// The instructions every model gets, whatever the provider: how to show tables and how to
/// change the current table, so that replies of all models have the same shape.
pub const BASE_PROMPT: &str = "You are SheetGPT, an assistant that turns questions and pasted data into clean tables.\n\
When your answer contains tabular data, give it as one Markdown table (header row, then rows), or as a \
```json block holding {\"columns\": [{\"name\": ..., \"type\": ...}], \"rows\": [[...], ...]} with types among \
integer, decimal, float, boolean, date, datetime, currency, percent, url, email, text. Keep numbers as numbers.\n\
When the user asks to change the current table, answer with one short sentence and a ```sheetgpt-ops block \
holding a JSON array of operations, for example: \
[{\"op\": \"sort\", \"by\": [{\"column\": \"population\", \"desc\": true}]}], \
[{\"op\": \"filter_delete\", \"filter\": {\"column\": \"country\", \"cmp\": \"ne\", \"value\": \"France\"}}], \
[{\"op\": \"rename_column\", \"column\": \"A\", \"to\": \"B\"}], \
[{\"op\": \"add_column\", \"name\": \"total\", \"formula\": \"price * qty\"}] (a formula column takes its type \
from the formula: leave out \"type\"), \
[{\"op\": \"drop_column\", \"column\": \"x\"}], \
[{\"op\": \"set_cells\", \"cells\": [{\"row\": 3, \"column\": \"city\", \"value\": \"Lyon\"}]}], \
[{\"op\": \"insert_rows\", \"rows\": [{\"city\": \"Nice\"}]}], [{\"op\": \"delete_rows\", \"rows\": [4]}], \
[{\"op\": \"change_type\", \"column\": \"year\", \"to\": \"integer\"}], \
[{\"op\": \"trim\", \"columns\": [\"city\"]}] (spaces around text are kept unless the user asks to trim them). Row numbers are the ids shown in the table. \
To change another of the user's tables, write the block as {\"table\": \"its name\", \"ops\": [...]}. \
Tables the user pastes are stored by SheetGPT as they are: do not repeat them; a pasted table too long \
for your context is shown to you as a summary with its first rows.";

/// One message of the conversation as the context builder sees it.
pub struct Turn {
    pub role: Role,
    pub content: String,
    /// The message with each table the user pasted in it replaced by its summary
    /// (`sheetgpt_core::paste`), when it holds any.
    pub summarised: Option<String>,
}

impl Turn {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            summarised: None,
        }
    }
}

/// What the model was not sent, kept in the reply's `meta.context` so that the user is told.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Report {
    /// How the new message was sent: `whole`, `tables_summarised` (its pasted tables
    /// replaced by their summaries) or `cut` (its start left out: it was longer than the
    /// window even so).
    pub new_message: &'static str,
    /// Characters of the new message left out from its start, when it was cut.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut_chars: Option<usize>,
    /// Earlier messages sent with their pasted tables summarised.
    pub earlier_summarised: usize,
    /// Earlier messages (of those looked at) that did not fit in the window and were not sent.
    pub earlier_left_out: usize,
    /// Earlier messages sent.
    pub earlier_sent: usize,
}

impl Report {
    /// Whether the model saw less than the conversation holds.
    pub fn trimmed(&self) -> bool {
        self.new_message != "whole" || self.earlier_summarised > 0 || self.earlier_left_out > 0
    }
}

/// The messages of a request and what was left out of them.
pub struct Built {
    pub messages: Vec<ChatMessage>,
    pub report: Report,
}

/// Builds the messages for a request. `history` is newest first, the user's new message first
/// of all; the result is in conversation order. Each message goes whole if it fits what is
/// left of the window, else with its pasted tables summarised if that fits; the first that
/// fits neither way ends the history. The new message is always sent: when even its summary
/// is too long, its end is kept (cut at a line break), with a note saying so.
pub fn build(
    system_prompt: Option<&str>,
    table_context: Option<&str>,
    history: &[Turn],
    context_window: u32,
    reply_budget: u32,
    count: &dyn Fn(&str) -> u32,
) -> Built {
    let mut system = BASE_PROMPT.to_owned();
    if let Some(extra) = system_prompt.filter(|s| !s.trim().is_empty()) {
        system.push_str("\n\n");
        system.push_str(extra);
    }
    if let Some(table) = table_context {
        system.push_str("\n\nThe current table:\n");
        system.push_str(table);
    }
    let mut budget = context_window
        .saturating_sub(reply_budget.min(context_window / 2))
        .saturating_sub(count(&system));
    let mut report = Report {
        new_message: "whole",
        ..Report::default()
    };
    let mut kept = Vec::new();
    for (i, turn) in history.iter().enumerate() {
        let whole = count(&turn.content);
        let (content, cost) = if whole <= budget {
            (turn.content.clone(), whole)
        } else if let Some(short) = turn
            .summarised
            .as_ref()
            .map(|s| (s, count(s)))
            .filter(|(_, c)| *c <= budget)
        {
            if i == 0 {
                report.new_message = "tables_summarised";
            } else {
                report.earlier_summarised += 1;
            }
            (short.0.clone(), short.1)
        } else if i == 0 {
            let text = turn.summarised.as_deref().unwrap_or(&turn.content);
            let (cut, left_out) = keep_end(text, budget, count);
            report.new_message = "cut";
            report.cut_chars = Some(left_out);
            let cost = count(&cut);
            (cut, cost)
        } else {
            report.earlier_left_out = history.len() - i;
            break;
        };
        if i > 0 {
            report.earlier_sent += 1;
        }
        budget = budget.saturating_sub(cost);
        kept.push(ChatMessage {
            role: turn.role,
            content,
        });
    }
    kept.push(ChatMessage {
        role: Role::System,
        content: system,
    });
    kept.reverse();
    Built {
        messages: kept,
        report,
    }
}

/// The end of `text` that fits `budget`, starting at a line break where one is near, after a
/// note that says how much was left out; and the number of characters left out.
fn keep_end(text: &str, budget: u32, count: &dyn Fn(&str) -> u32) -> (String, usize) {
    let total = text.chars().count();
    let note = |n: usize| {
        format!(
            "[SheetGPT: the first {n} characters of this message were left out: it is longer \
             than this model's context window.]\n"
        )
    };
    // Start from the estimate of 4 characters a token, then shorten until it fits the
    // model's own count.
    let mut keep = (budget.saturating_sub(count(&note(total))) as usize * 4).min(total);
    loop {
        let mut start = text
            .char_indices()
            .nth(total - keep)
            .map_or(text.len(), |(b, _)| b);
        // Begin at the next line if there is one within the last quarter of what is kept.
        if let Some(nl) = text[start..].find('\n')
            && nl < (text.len() - start) / 4
            && start > 0
            && !text[..start].ends_with('\n')
        {
            start += nl + 1;
        }
        let left_out = text[..start].chars().count();
        let out = format!("{}{}", note(left_out), &text[start..]);
        if count(&out) <= budget || keep == 0 {
            return (out, left_out);
        }
        keep = keep * 9 / 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turns(items: &[(Role, String)]) -> Vec<Turn> {
        items
            .iter()
            .map(|(r, c)| Turn::new(*r, c.clone()))
            .collect()
    }

    #[test]
    fn the_newest_messages_that_fit_are_kept_in_order_after_the_system_prompt() {
        let history: Vec<(Role, String)> = (0..50)
            .map(|i| {
                (
                    if i % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    },
                    format!("message {i} {}", "x".repeat(400)),
                )
            })
            .collect();
        let window = estimate_tokens(BASE_PROMPT) + 1000 + 1024;
        let built = build(None, None, &turns(&history), window, 1024, &estimate_tokens);
        let msgs = built.messages;
        assert_eq!(msgs[0].role, Role::System);
        let kept = msgs.len() - 1;
        assert!((5..50).contains(&kept), "kept {kept}");
        assert!(
            msgs.last()
                .is_some_and(|m| m.content.starts_with("message 0 ")),
            "the newest is last"
        );
        let total: u32 = msgs.iter().map(|m| estimate_tokens(&m.content)).sum();
        assert!(total <= window - 1024);
        assert_eq!(built.report.earlier_sent, kept - 1);
        assert_eq!(built.report.earlier_left_out, 50 - kept);
        assert!(built.report.trimmed());
    }

    #[test]
    fn an_oversized_new_message_keeps_its_end_and_says_how_much_was_left_out() {
        let text = format!("{}\nlast line END", "y".repeat(100_000));
        let built = build(
            None,
            None,
            &[Turn::new(Role::User, text)],
            4096,
            1024,
            &estimate_tokens,
        );
        let msgs = built.messages;
        assert_eq!(msgs.len(), 2);
        assert!(msgs[1].content.ends_with("END"));
        assert!(msgs[1].content.starts_with("[SheetGPT: the first "));
        assert!(msgs[1].content.len() < 100_000);
        assert_eq!(built.report.new_message, "cut");
        let left_out = built.report.cut_chars.unwrap_or(0);
        assert!(
            msgs[1]
                .content
                .contains(&format!("first {left_out} characters"))
        );
        let total: u32 = msgs.iter().map(|m| estimate_tokens(&m.content)).sum();
        assert!(total <= 4096 - 1024, "{total}");
    }

    #[test]
    fn a_message_too_long_whole_is_sent_with_its_tables_summarised() {
        let mut turn = Turn::new(Role::User, format!("data:\n{}", "1,2\n".repeat(50_000)));
        turn.summarised = Some("data:\n[summary of a 50000-row table]".to_owned());
        let built = build(None, None, &[turn], 8192, 1024, &estimate_tokens);
        assert_eq!(
            built.messages[1].content,
            "data:\n[summary of a 50000-row table]"
        );
        assert_eq!(built.report.new_message, "tables_summarised");
        assert!(built.report.trimmed());
    }

    #[test]
    fn a_message_that_fits_is_sent_whole_even_with_a_summary_at_hand() {
        let mut turn = Turn::new(Role::User, "a,b\n1,2");
        turn.summarised = Some("[summary]".to_owned());
        let built = build(None, None, &[turn], 8192, 1024, &estimate_tokens);
        assert_eq!(built.messages[1].content, "a,b\n1,2");
        assert!(!built.report.trimmed());
    }

    #[test]
    fn the_table_and_the_users_system_prompt_are_in_the_system_message() {
        let msgs = build(
            Some("Answer in French."),
            Some("| a |\n|---|\n| 1 |"),
            &[Turn::new(Role::User, "hi")],
            8192,
            1024,
            &estimate_tokens,
        )
        .messages;
        assert!(msgs[0].content.contains("Answer in French.") && msgs[0].content.contains("| a |"));
    }
}
