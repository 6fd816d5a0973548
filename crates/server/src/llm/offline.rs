//! The built-in offline model as a `ChatModel`: the reply is computed in-process
//! (`sheetgpt_core::offline`) and streamed in small pieces like a remote model's.

use futures_util::stream;

use super::{
    ChatModel, ChatRequest, EventStream, FinishReason, LlmError, Role, StreamEvent, Usage,
};
use crate::chat::context::estimate_tokens;

pub struct OfflineModel;

/// Pieces of about this many bytes, cut at whitespace where possible.
const PIECE: usize = 48;

fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for word in text.split_inclusive(char::is_whitespace) {
        current.push_str(word);
        if current.len() >= PIECE {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[async_trait::async_trait]
impl ChatModel for OfflineModel {
    async fn stream(&self, request: ChatRequest) -> Result<EventStream, LlmError> {
        let last = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map_or("", |m| m.content.as_str());
        // Large pastes take real CPU to parse: keep it off the async workers.
        let input = last.to_owned();
        let reply = tokio::task::spawn_blocking(move || sheetgpt_core::offline::reply(&input))
            .await
            .map_err(|e| LlmError::Protocol(format!("offline model failed: {e}")))?;
        let usage = Usage {
            prompt_tokens: request
                .messages
                .iter()
                .map(|m| estimate_tokens(&m.content))
                .sum(),
            completion_tokens: estimate_tokens(&reply).saturating_sub(4),
        };
        let mut events: Vec<Result<StreamEvent, LlmError>> = pieces(&reply)
            .into_iter()
            .map(|p| Ok(StreamEvent::Delta(p)))
            .collect();
        events.push(Ok(StreamEvent::Usage(usage)));
        events.push(Ok(StreamEvent::Done(FinishReason::Stop)));
        Ok(Box::pin(stream::iter(events)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_rejoin_to_the_whole_reply() {
        let text = "word ".repeat(100) + "tail";
        let p = pieces(&text);
        assert!(p.len() > 5);
        assert_eq!(p.concat(), text);
    }
}
