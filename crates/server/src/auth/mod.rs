//! Accounts and authentication: passwords, access tokens (JWT), refresh-token rotation,
//! login sessions, API keys and the extractors that guard every other route.

pub mod cache;
pub mod email;
pub mod extract;
pub mod identity;
pub mod jwt;
pub mod password;
pub mod routes;
pub mod service;
pub mod throttle;
pub mod tokens;
pub mod web;
