//! Conversations with language models: messages, context, replies streamed over SSE or a
//! WebSocket, usage.

pub mod context;
pub mod routes;
pub mod runs;
pub mod service;
pub mod usage;
pub mod ws;
