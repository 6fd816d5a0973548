//! Conversations with language models: messages, context, streaming replies (SSE), usage.

pub mod context;
pub mod routes;
pub mod service;
