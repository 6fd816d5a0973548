//! End-to-end tests: the real server on a random port over a real database (a fresh SQLite
//! file, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set).

#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::field_reassign_with_default,
    reason = "test helpers fail loudly; configs are built field by field from the defaults"
)]

mod fakes;
mod helpers;

mod admin;
mod api_keys;
mod auth;
mod browser;
mod change_jobs;
mod chat;
mod chat_fidelity;
mod chat_remote;
mod cli;
mod contracts;
mod errors;
mod export_processes;
mod exports;
mod fidelity;
mod formulas;
mod google;
mod imports;
mod isolation;
mod job_events;
mod jobs;
mod llm;
mod local_models;
mod longwork;
mod model_keys;
mod nul;
mod ops;
mod quotas;
mod recursion;
mod schemas;
mod secrets_in_logs;
mod sessions;
mod soak;
mod sorted_pages;
mod tables;
mod templates;
mod web_auth;
mod ws;
