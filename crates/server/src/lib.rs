//! SheetGPT: a web service where conversations with language models become typed, versioned
//! tables that leave as Excel, CSV, JSON or Google Sheets.

pub mod account;
pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod chat;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod exports;
pub mod google;
pub mod http;
pub mod jobs;
pub mod llm;
pub mod quotas;
pub mod retention;
pub mod schemas;
pub mod scratch;
pub mod secrets;
pub mod state;
pub mod tables;
pub mod telemetry;
pub mod web;

pub use app::Application;
pub use config::Config;
