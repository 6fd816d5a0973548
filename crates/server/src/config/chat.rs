//! `[chat]`: messages, replies and their context.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Longest message a user may send, in characters.
    pub max_message_chars: usize,
    /// Tokens reserved for the reply when trimming the context.
    pub reply_max_tokens: u32,
    /// Model tokens (prompt + completion) a user may spend per UTC day; 0 = no limit.
    pub daily_token_quota: u64,
    /// Rows of the current table shown to the model with its columns.
    pub table_sample_rows: usize,
    /// Times a reply cut at the output limit is asked to continue.
    pub max_continuations: u32,
    /// A conversation's WebSocket is closed after this long with no frame from the client and
    /// no reply running; 0 = never.
    pub ws_idle_secs: u64,
    /// A reply still `streaming` that no server has marked as being written for this long
    /// (its server died mid-reply) is ended as `incomplete`. A server writing a reply marks
    /// it every quarter of this.
    pub abandoned_reply_secs: u64,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            max_message_chars: 200_000,
            reply_max_tokens: 4096,
            daily_token_quota: 0,
            table_sample_rows: 20,
            max_continuations: 3,
            ws_idle_secs: 300,
            abandoned_reply_secs: 60,
        }
    }
}

impl ChatConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(2..=7 * 24 * 3600).contains(&self.abandoned_reply_secs) {
            return Err(invalid(
                "chat.abandoned_reply_secs",
                "must be between 2 and 604800 (a week)",
            ));
        }
        Ok(())
    }
}
