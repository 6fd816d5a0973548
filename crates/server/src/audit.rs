//! The audit log: an append-only record of security-relevant events (sign-ins, keys, sessions,
//! roles, exports, Google connections, admin actions) with who, what, from where and when.
//! Details never hold secrets: ids, names, counts and reasons only.

use sea_orm::DatabaseConnection;
use serde_json::Value;
use uuid::Uuid;

use crate::auth::identity::ClientInfo;
use crate::db::audit::NewEvent;

pub use crate::db::audit::{AuditEvent, Filter, list, purge};

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
pub async fn record(db: &DatabaseConnection, client: Option<&ClientInfo>, event: Event<'_>) {
    let row = NewEvent {
        action: event.action.to_owned(),
        actor_id: event.actor,
        target_type: event.target.as_ref().map(|(k, _)| (*k).to_owned()),
        target_id: event.target.map(|(_, id)| clip(&id, 200)),
        ip: client.map(|c| clip(&c.ip, 64)),
        user_agent: client
            .and_then(|c| c.user_agent.as_deref())
            .map(|ua| clip(ua, 500)),
        request_id: client
            .and_then(|c| c.request_id.as_deref())
            .map(|r| clip(r, 100)),
        details: event.details.map(|d| d.to_string()),
    };
    if let Err(err) = crate::db::audit::insert(db, row).await {
        tracing::error!(action = event.action, error = %err, "could not write an audit event");
    }
}
