//! Retention: what was deleted is purged for good after `retention.soft_deleted_days`, audit
//! events after `retention.audit_days`, export files after `exports.retention_hours`, uploads
//! whose import job has ended, and the temporary files of processes that died. Run by
//! every server's housekeeping every `retention.sweep_interval_secs` (the deletes are
//! idempotent, so several servers sweeping at once is harmless), and by `sheetgpt purge`.

use chrono::{Duration, Utc};

use crate::state::AppState;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Rows of deleted records removed (users, tables, conversations, templates, …).
    pub records: u64,
    pub audit_events: u64,
    pub export_files: usize,
}

pub async fn sweep(state: &AppState) -> anyhow::Result<Swept> {
    let config = &state.config.retention;
    let days = |d: u64| Duration::days(i64::try_from(d).unwrap_or(i64::MAX / 86_400_000));
    let records = crate::db::purge(&state.db, Utc::now() - days(config.soft_deleted_days)).await?;
    let audit_events = crate::audit::purge(&state.db, Utc::now() - days(config.audit_days)).await?;
    let export_files =
        crate::exports::worker::sweep(state).await? + crate::jobs::sweep_uploads(state).await?;
    let swept = Swept {
        records,
        audit_events,
        export_files,
    };
    if swept != Swept::default() {
        tracing::info!(
            records = swept.records,
            audit_events = swept.audit_events,
            export_files = swept.export_files,
            "retention sweep"
        );
    }
    Ok(swept)
}
