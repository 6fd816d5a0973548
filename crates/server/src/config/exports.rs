//! `[exports]`: the job workers, export files and their retention.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportsConfig {
    /// Export jobs this process runs at once (0: this process runs none, others do).
    pub workers: usize,
    /// How long a claimed job is reserved for its worker without a heartbeat; a job whose
    /// worker died is taken up again after this time. Heartbeats come every third of it.
    pub lease_secs: u64,
    /// How often idle workers look for jobs queued by other processes.
    pub poll_ms: u64,
    /// Attempts before a job fails for good.
    pub max_attempts: i32,
    /// Wait before the first retry; it doubles with each further attempt …
    pub retry_base_secs: u64,
    /// … up to this.
    pub retry_max_secs: u64,
    /// Export jobs one user may have queued or running at once.
    pub max_active_per_user: u64,
    /// Hours an export's file is kept for download.
    pub retention_hours: u64,
    /// Rows read from the database per query while writing a file.
    pub page_rows: u64,
    /// `GET /account/export` writes the archive within the request while the account holds at
    /// most this many table rows; above, it answers 202 with an `account_archive` job.
    pub archive_sync_rows: u64,
    /// Tables with more rows than this go into the account archive as CSV instead of .xlsx
    /// (an Excel sheet holds 1,048,575 rows under its header).
    pub archive_xlsx_max_rows: u64,
    /// Deflate level of .xlsx files (downloads, export jobs, archives, `convert`): 1 (fastest)
    /// to 9 (smallest).
    pub xlsx_compression: u8,
    /// How often an open `/jobs/{id}/events` stream looks at its job.
    pub events_poll_ms: u64,
    /// Job event streams one user may have open at once on this process.
    pub max_event_streams_per_user: usize,
}

impl Default for ExportsConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            lease_secs: 60,
            poll_ms: 1000,
            max_attempts: 5,
            retry_base_secs: 2,
            retry_max_secs: 300,
            max_active_per_user: 5,
            retention_hours: 7 * 24,
            page_rows: 2000,
            archive_sync_rows: 100_000,
            archive_xlsx_max_rows: 1_048_575,
            xlsx_compression: sheetgpt_core::export::DEFAULT_COMPRESSION_LEVEL,
            events_poll_ms: 500,
            max_event_streams_per_user: 8,
        }
    }
}

impl ExportsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.lease_secs < 2 {
            return Err(invalid("exports.lease_secs", "must be at least 2"));
        }
        if self.poll_ms == 0 {
            return Err(invalid("exports.poll_ms", "must be at least 1"));
        }
        if self.max_attempts < 1 {
            return Err(invalid("exports.max_attempts", "must be at least 1"));
        }
        if !(50..=60_000).contains(&self.events_poll_ms) {
            return Err(invalid(
                "exports.events_poll_ms",
                "must be between 50 and 60000",
            ));
        }
        if !(1..=1000).contains(&self.max_event_streams_per_user) {
            return Err(invalid(
                "exports.max_event_streams_per_user",
                "must be between 1 and 1000",
            ));
        }
        if !(1..=9).contains(&self.xlsx_compression) {
            return Err(invalid(
                "exports.xlsx_compression",
                "must be between 1 and 9",
            ));
        }
        if !(1..=100_000).contains(&self.page_rows) {
            return Err(invalid("exports.page_rows", "must be between 1 and 100000"));
        }
        if self.retention_hours == 0 {
            return Err(invalid("exports.retention_hours", "must be at least 1"));
        }
        if self.archive_xlsx_max_rows == 0 || self.archive_xlsx_max_rows > 1_048_575 {
            return Err(invalid(
                "exports.archive_xlsx_max_rows",
                "must be between 1 and 1048575 (the rows of an Excel sheet under its header)",
            ));
        }
        Ok(())
    }
}
