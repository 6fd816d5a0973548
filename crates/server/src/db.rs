//! Storage lives in its own crate (`sheetgpt-store`: entities, migrations, every query); this
//! module re-exports it and opens it as the configuration says.

pub use sheetgpt_store::*;

use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::config::Config;

/// Opens the pool described by the configuration, creating the data dir and the SQLite file
/// (private to this user) when needed.
pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let url = config.effective_database_url();
    if url.starts_with("sqlite:") {
        crate::secrets::ensure_data_dir(&config.data_dir)?;
        crate::secrets::warn_if_open(&config.data_dir);
        if let Some(path) = sqlite_file(&url) {
            crate::secrets::create_private(&path)?;
        }
    }
    let db = &config.database;
    open(&Options {
        url,
        max_connections: db.max_connections,
        min_connections: db.min_connections,
        connect_timeout: Duration::from_secs(db.connect_timeout_secs),
        acquire_timeout: Duration::from_secs(db.acquire_timeout_secs),
    })
    .await
}
