//! Sheet links (a table kept in step with a Google tab) and the syncs a table change queues:
//! written in the change's own transaction, so a committed version always has its syncs.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::entity::sheet_link;
use crate::jobs::{self, JobRecord, Kind, NewJob};
use crate::owned;

pub use sheet_link::Model as LinkRecord;

pub const ACTIVE: &str = "active";
pub const ERROR: &str = "error";

/// The payload of a `sheet_sync` job.
#[derive(Debug, Serialize, Deserialize)]
pub struct SyncPayload {
    pub link_id: Uuid,
}

/// Where a link writes and how (the template as stored JSON).
pub struct NewLink<'a> {
    pub owner_id: Uuid,
    pub table_id: Uuid,
    pub spreadsheet_id: &'a str,
    pub sheet_id: i64,
    pub sheet_title: &'a str,
    pub auth: &'a str,
    pub template: Option<String>,
    pub version: i32,
}

/// Links the tab, or updates the live link of the same table and tab: the export that made
/// this tab may have linked it in an attempt stopped before its job recorded success, or an
/// earlier export linked the same tab. One link per table and tab.
pub async fn link(db: &impl ConnectionTrait, new: NewLink<'_>) -> Result<LinkRecord, DbErr> {
    let now = Utc::now();
    let existing = owned::live::<sheet_link::Entity>(new.owner_id)
        .filter(sheet_link::Column::TableId.eq(new.table_id))
        .filter(sheet_link::Column::SpreadsheetId.eq(new.spreadsheet_id))
        .filter(sheet_link::Column::SheetId.eq(new.sheet_id))
        .one(db)
        .await?;
    if let Some(link) = existing {
        let mut link: sheet_link::ActiveModel = link.into();
        link.sheet_title = Set(new.sheet_title.to_owned());
        link.auth = Set(new.auth.to_owned());
        link.template = Set(new.template);
        link.last_synced_version = Set(new.version);
        link.last_synced_at = Set(now);
        link.last_error = Set(None);
        link.status = Set(ACTIVE.to_owned());
        link.updated_at = Set(now);
        return link.update(db).await;
    }
    sheet_link::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner_id: Set(new.owner_id),
        table_id: Set(new.table_id),
        spreadsheet_id: Set(new.spreadsheet_id.to_owned()),
        sheet_id: Set(new.sheet_id),
        sheet_title: Set(new.sheet_title.to_owned()),
        auth: Set(new.auth.to_owned()),
        template: Set(new.template),
        last_synced_version: Set(new.version),
        last_synced_at: Set(now),
        last_error: Set(None),
        status: Set(ACTIVE.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db)
    .await
}

/// Queues a sync of one link.
pub async fn queue_sync(
    db: &impl ConnectionTrait,
    link: &LinkRecord,
    max_attempts: i32,
) -> Result<JobRecord, DbErr> {
    let payload = serde_json::to_string(&SyncPayload { link_id: link.id })
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    let (job, _) = jobs::enqueue(
        db,
        link.owner_id,
        NewJob {
            id: None,
            kind: Kind::SheetSync.as_str(),
            payload: &payload,
            max_attempts,
            progress_total: None,
            idempotency_key: None,
        },
    )
    .await?;
    Ok(job)
}

/// The event of a table change for its links: a sync job for every live link of the table,
/// written in the change's transaction. Returns how many were queued.
pub async fn table_changed(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    table_id: Uuid,
    max_attempts: i32,
) -> Result<usize, DbErr> {
    let links = owned::live::<sheet_link::Entity>(owner_id)
        .filter(sheet_link::Column::TableId.eq(table_id))
        .all(db)
        .await?;
    for link in &links {
        queue_sync(db, link, max_attempts).await?;
    }
    Ok(links.len())
}

/// What a sync did to the link: the version and tab title it wrote, or its error.
pub async fn record_sync(
    db: &impl ConnectionTrait,
    id: Uuid,
    version: Option<(i32, &str)>,
    error: Option<&str>,
) -> Result<(), DbErr> {
    let mut q = sheet_link::Entity::update_many()
        .col_expr(sheet_link::Column::UpdatedAt, Expr::value(Utc::now()))
        .col_expr(
            sheet_link::Column::LastError,
            Expr::value(error.map(str::to_owned)),
        )
        .col_expr(
            sheet_link::Column::Status,
            Expr::value(if error.is_some() { ERROR } else { ACTIVE }),
        )
        .filter(sheet_link::Column::Id.eq(id));
    if let Some((version, title)) = version {
        q = q
            .col_expr(sheet_link::Column::LastSyncedVersion, Expr::value(version))
            .col_expr(sheet_link::Column::LastSyncedAt, Expr::value(Utc::now()))
            .col_expr(sheet_link::Column::SheetTitle, Expr::value(title));
    }
    q.exec(db).await?;
    Ok(())
}

/// The owner's live links (of one table, when given), newest first, below `before`.
pub async fn page(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    table_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<LinkRecord>, DbErr> {
    let mut select = owned::live::<sheet_link::Entity>(owner_id);
    if let Some(table_id) = table_id {
        select = select.filter(sheet_link::Column::TableId.eq(table_id));
    }
    owned::page(db, select, before, limit).await
}
