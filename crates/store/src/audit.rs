//! The audit log's rows: append, read newest first with filters, drop past retention.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use crate::entity::audit_event;

pub use audit_event::Model as AuditEvent;

/// One event as stored (already clipped to the columns' sizes by the caller).
pub struct NewEvent {
    pub action: String,
    pub actor_id: Option<Uuid>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: Option<String>,
}

pub async fn insert(db: &impl ConnectionTrait, event: NewEvent) -> Result<(), DbErr> {
    audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        action: Set(event.action),
        actor_id: Set(event.actor_id),
        target_type: Set(event.target_type),
        target_id: Set(event.target_id),
        ip: Set(event.ip),
        user_agent: Set(event.user_agent),
        request_id: Set(event.request_id),
        details: Set(event.details),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Filters for reading the log.
#[derive(Default)]
pub struct Filter {
    pub actor: Option<Uuid>,
    /// An action (`auth.login`), or a prefix ending in a dot (`auth.`) for all of a kind.
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Events newest first, `limit` of them with ids below `before`.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &Filter,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<AuditEvent>, DbErr> {
    let mut q = audit_event::Entity::find()
        .order_by_desc(audit_event::Column::Id)
        .limit(limit);
    if let Some(actor) = filter.actor {
        q = q.filter(audit_event::Column::ActorId.eq(actor));
    }
    if let Some(action) = &filter.action {
        q = if action.ends_with('.') {
            q.filter(audit_event::Column::Action.starts_with(action.as_str()))
        } else {
            q.filter(audit_event::Column::Action.eq(action.as_str()))
        };
    }
    if let Some(kind) = &filter.target_type {
        q = q.filter(audit_event::Column::TargetType.eq(kind.as_str()));
    }
    if let Some(id) = &filter.target_id {
        q = q.filter(audit_event::Column::TargetId.eq(id.as_str()));
    }
    if let Some(since) = filter.since {
        q = q.filter(audit_event::Column::CreatedAt.gte(since));
    }
    if let Some(until) = filter.until {
        q = q.filter(audit_event::Column::CreatedAt.lt(until));
    }
    if let Some(before) = before {
        q = q.filter(audit_event::Column::Id.lt(before));
    }
    q.all(db).await
}

/// Deletes events older than `cutoff` (retention).
pub async fn purge(db: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(audit_event::Entity::delete_many()
        .filter(audit_event::Column::CreatedAt.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected)
}
