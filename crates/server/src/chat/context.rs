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
[{\"op\": \"add_column\", \"name\": \"total\", \"type\": \"decimal\", \"formula\": \"price * qty\"}], \
[{\"op\": \"drop_column\", \"column\": \"x\"}], \
[{\"op\": \"set_cells\", \"cells\": [{\"row\": 3, \"column\": \"city\", \"value\": \"Lyon\"}]}], \
[{\"op\": \"insert_rows\", \"rows\": [{\"city\": \"Nice\"}]}], [{\"op\": \"delete_rows\", \"rows\": [4]}], \
[{\"op\": \"change_type\", \"column\": \"year\", \"to\": \"integer\"}]. Row numbers are the ids shown in the table.";

/// Builds the messages for a request. `history` is newest first, the user's new message first
/// of all; the result is in conversation order.
pub fn build(
    system_prompt: Option<&str>,
    table_context: Option<&str>,
    history: &[(Role, String)],
    context_window: u32,
    reply_budget: u32,
    count: &dyn Fn(&str) -> u32,
) -> Vec<ChatMessage> {
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
    let mut kept = Vec::new();
    for (i, (role, content)) in history.iter().enumerate() {
        let cost = count(content);
        if cost > budget {
            if i == 0 {
                // The new message alone does not fit: send its end, which the model needs most.
                let keep_chars = (budget.saturating_sub(4) * 4) as usize;
                let skip = content.chars().count().saturating_sub(keep_chars);
                kept.push(ChatMessage {
                    role: *role,
                    content: content.chars().skip(skip).collect(),
                });
            }
            break;
        }
        budget -= cost;
        kept.push(ChatMessage {
            role: *role,
            content: content.clone(),
        });
    }
    kept.push(ChatMessage {
        role: Role::System,
        content: system,
    });
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let msgs = build(None, None, &history, window, 1024, &estimate_tokens);
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
    }

    #[test]
    fn an_oversized_new_message_is_cut_from_the_front_not_dropped() {
        let history = vec![(Role::User, format!("{}END", "y".repeat(100_000)))];
        let msgs = build(None, None, &history, 4096, 1024, &estimate_tokens);
        assert_eq!(msgs.len(), 2);
        assert!(msgs[1].content.ends_with("END"));
        assert!(msgs[1].content.len() < 100_000);
    }

    #[test]
    fn the_table_and_the_users_system_prompt_are_in_the_system_message() {
        let msgs = build(
            Some("Answer in French."),
            Some("| a |\n|---|\n| 1 |"),
            &[(Role::User, "hi".into())],
            8192,
            1024,
            &estimate_tokens,
        );
        assert!(msgs[0].content.contains("Answer in French.") && msgs[0].content.contains("| a |"));
    }
}
