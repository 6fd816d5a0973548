//! The audit log: an append-only record of security-relevant events (sign-ins, keys, sessions,
//! roles, exports, Google connections, admin actions) with who, what, from where and when.
//! Details never hold secrets: ids, names, counts and reasons only.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::extract::ClientInfo;
use crate::db::entity::audit_event;
use crate::state::AppState;

pub use audit_event::Model as AuditEvent;

/// One event to record.
pub struct Event<'a> {
    pub action: &'a str,
    pub actor: Option<Uuid>,
    pub target: Option<(&'a str, String)>,
    pub details: Option<Value>,
}

impl<'a> Event<'a> {
    pub fn new(action: &'a str, actor: Option<Uuid>) -> Self {
        Self {
            action,
            actor,
            target: None,
            details: None,
        }
    }

    pub fn target(mut self, kind: &'a str, id: impl ToString) -> Self {
        self.target = Some((kind, id.to_string()));
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Records an event. A failure to write it is logged, never turned into a failed request:
/// the action it describes has already happened.
pub async fn record(state: &AppState, client: Option<&ClientInfo>, event: Event<'_>) {
    let row = audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        action: Set(event.action.to_owned()),
        actor_id: Set(event.actor),
        target_type: Set(event.target.as_ref().map(|(k, _)| (*k).to_owned())),
        target_id: Set(event.target.map(|(_, id)| clip(&id, 200))),
        ip: Set(client.map(|c| clip(&c.ip, 64))),
        user_agent: Set(client
            .and_then(|c| c.user_agent.as_deref())
            .map(|ua| clip(ua, 500))),
        request_id: Set(client
            .and_then(|c| c.request_id.as_deref())
            .map(|r| clip(r, 100))),
        details: Set(event.details.map(|d| d.to_string())),
        created_at: Set(Utc::now()),
    };
    if let Err(err) = row.insert(&state.db).await {
        tracing::error!(action = event.action, error = %err, "could not write an audit event");
    }
}

/// Filters for reading the log.
#[derive(Default)]
pub struct Filter {
    pub actor: Option<Uuid>,
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
) -> Result<Vec<AuditEvent>, sea_orm::DbErr> {
    use sea_orm::{QueryOrder, QuerySelect};
    let mut q = audit_event::Entity::find()
        .order_by_desc(audit_event::Column::Id)
        .limit(limit);
    if let Some(actor) = filter.actor {
        q = q.filter(audit_event::Column::ActorId.eq(actor));
    }
    if let Some(action) = &filter.action {
        // `auth.` matches every auth event.
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
pub async fn purge(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    Ok(audit_event::Entity::delete_many()
        .filter(audit_event::Column::CreatedAt.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected)
}
