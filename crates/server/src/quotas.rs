//! Per-user quotas: model tokens per day, export jobs per day and rows stored in total.
//! Defaults come from the configuration (0 = no limit); an admin can override them per user.
//! An exceeded quota is a 429 (daily ones, with `Retry-After` until midnight UTC) or a 403
//! (stored rows), whose problem names the quota and when it resets.
//!
//! A check and the write it allows are one step: both run in one transaction that first takes
//! the user's quota lock ([`lock_user`]), so that concurrent requests of one user (imports,
//! exports, on any instance) are counted one after the other instead of each seeing the same
//! room. The model token quota is checked before a reply, whose size is not known until it
//! ends, so concurrent replies may each start under it.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::Config;
use crate::db::quotas as store;
pub use crate::db::quotas::{lock_user, stored_rows};
use crate::error::Error;

/// A user's limits (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    pub tokens_per_day: u64,
    pub exports_per_day: u64,
    pub max_stored_rows: u64,
}

/// An admin's overrides; a missing field keeps the configured default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Overrides {
    pub tokens_per_day: Option<u64>,
    pub exports_per_day: Option<u64>,
    pub max_stored_rows: Option<u64>,
}

/// What the quota checks read: the pool and the configured defaults.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub db: &'a sea_orm::DatabaseConnection,
    pub config: &'a Config,
}

pub fn defaults(config: &Config) -> Limits {
    Limits {
        tokens_per_day: config.chat.daily_token_quota,
        exports_per_day: config.quotas.exports_per_day,
        max_stored_rows: config.quotas.max_stored_rows,
    }
}

fn to_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok())
}

pub async fn overrides(db: &impl ConnectionTrait, user_id: Uuid) -> Result<Overrides, DbErr> {
    let o = store::overrides(db, user_id).await?;
    Ok(Overrides {
        tokens_per_day: to_u64(o.tokens_per_day),
        exports_per_day: to_u64(o.exports_per_day),
        max_stored_rows: to_u64(o.max_stored_rows),
    })
}

pub async fn limits(ctx: Ctx<'_>, user_id: Uuid) -> Result<Limits, DbErr> {
    let d = defaults(ctx.config);
    let o = overrides(ctx.db, user_id).await?;
    Ok(Limits {
        tokens_per_day: o.tokens_per_day.unwrap_or(d.tokens_per_day),
        exports_per_day: o.exports_per_day.unwrap_or(d.exports_per_day),
        max_stored_rows: o.max_stored_rows.unwrap_or(d.max_stored_rows),
    })
}

/// Replaces a user's overrides.
pub async fn set_overrides(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    o: Overrides,
) -> Result<(), DbErr> {
    let to_i64 = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    store::set_overrides(
        db,
        user_id,
        store::Overrides {
            tokens_per_day: to_i64(o.tokens_per_day),
            exports_per_day: to_i64(o.exports_per_day),
            max_stored_rows: to_i64(o.max_stored_rows),
        },
    )
    .await
}

/// The start of today, UTC.
pub fn today() -> DateTime<Utc> {
    let now = Utc::now();
    Utc.with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0)
        .single()
        .unwrap_or(now)
}

fn daily_exceeded(what: &str, limit: u64, used: u64) -> Error {
    let now = Utc::now();
    let reset = today() + chrono::Duration::days(1);
    Error::QuotaExceeded {
        retry_after_secs: Some((reset - now).num_seconds().max(1) as u64),
        detail: format!(
            "Your daily {what} quota of {limit} is used up ({used} used); it resets at {} UTC.",
            reset.format("%Y-%m-%d %H:%M")
        ),
    }
}

/// Model tokens used today.
pub async fn check_tokens(ctx: Ctx<'_>, user_id: Uuid) -> Result<(), Error> {
    let limit = limits(ctx, user_id).await?.tokens_per_day;
    if limit == 0 {
        return Ok(());
    }
    let used = crate::db::conversations::tokens_since(ctx.db, user_id, today()).await?;
    let used = u64::try_from(used).unwrap_or(0);
    if used >= limit {
        return Err(daily_exceeded("model token", limit, used));
    }
    Ok(())
}

/// Export jobs created today, checked under the user's quota lock (taken here) in the
/// transaction that then creates the job: one more must fit.
pub async fn check_exports(
    ctx: Ctx<'_>,
    txn: &DatabaseTransaction,
    user_id: Uuid,
) -> Result<(), Error> {
    let limit = limits(ctx, user_id).await?.exports_per_day;
    lock_user(txn, user_id).await?;
    if limit == 0 {
        return Ok(());
    }
    let used = exports_today(txn, user_id).await?;
    if used >= limit {
        return Err(daily_exceeded("export", limit, used));
    }
    Ok(())
}

/// Export jobs the user created today (UTC).
pub async fn exports_today(db: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, DbErr> {
    crate::db::jobs::created_since(db, user_id, crate::db::jobs::Kind::Export.as_str(), today())
        .await
}

/// A user's stored-rows quota, for a transaction that changes how many rows they store:
/// [`RowQuota::lock`] first thing in it, [`RowQuota::check`] before it commits.
#[derive(Clone, Copy, Debug)]
pub struct RowQuota {
    user_id: Uuid,
    limit: u64,
}

impl RowQuota {
    pub async fn of(ctx: Ctx<'_>, user_id: Uuid) -> Result<Self, Error> {
        Ok(Self {
            user_id,
            limit: limits(ctx, user_id).await?.max_stored_rows,
        })
    }

    /// Takes the user's quota lock (nothing to hold without a limit).
    pub async fn lock(&self, txn: &DatabaseTransaction) -> Result<(), Error> {
        if self.limit > 0 {
            lock_user(txn, self.user_id).await?;
        }
        Ok(())
    }

    /// Refuses a change that would take the user's stored rows past their quota. Counted in
    /// `txn`, under the lock, before the change's own rows are counted.
    pub async fn check(&self, txn: &DatabaseTransaction, adding: i64) -> Result<(), Error> {
        if adding <= 0 || self.limit == 0 {
            return Ok(());
        }
        let stored = stored_rows(txn, self.user_id).await?;
        self.refuse_past(stored, adding)
    }

    /// Like [`RowQuota::check`], for `added` rows the transaction has already made count.
    pub async fn check_written(&self, txn: &DatabaseTransaction, added: i64) -> Result<(), Error> {
        if added <= 0 || self.limit == 0 {
            return Ok(());
        }
        let now = stored_rows(txn, self.user_id).await?;
        self.refuse_past(now.saturating_sub(added.unsigned_abs()), added)
    }

    fn refuse_past(&self, stored: u64, adding: i64) -> Result<(), Error> {
        let limit = self.limit;
        let after = stored.saturating_add(adding.unsigned_abs());
        if after > limit {
            return Err(Error::QuotaExceeded {
                retry_after_secs: None,
                detail: format!(
                    "Your tables may hold {limit} rows in all; you have {stored} and this would add {adding}. Delete rows or tables to make room (it does not reset)."
                ),
            });
        }
        Ok(())
    }
}
