//! SeaORM entities. Every table has a UUID v7 `id`, `created_at`, `updated_at` and
//! `deleted_at` (soft delete); repositories never return a row whose `deleted_at` is set.

pub mod api_key;
pub mod audit_event;
pub mod conversation;
pub mod google_account;
pub mod google_authorization;
pub mod job;
pub mod message;
pub mod refresh_token;
pub mod schema_preset;
pub mod session;
pub mod sheet_link;
pub mod table;
pub mod table_version;
pub mod template;
pub mod user;
pub mod user_model_key;
pub mod user_quota;
