//! What a user's replies cost: tokens and cost per day and model.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::conversations as store;
use crate::error::Error;

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageRow {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub model: String,
    pub replies: u64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageResponse {
    pub items: Vec<UsageRow>,
    pub total_tokens: i64,
    pub total_cost_micros: i64,
    /// Tokens per day allowed (0: no limit).
    pub daily_token_quota: u64,
}

/// A user's usage per day and model over the last `days` days (default 30).
pub async fn usage_report(
    ctx: crate::quotas::Ctx<'_>,
    user_id: Uuid,
    days: Option<u32>,
) -> Result<UsageResponse, Error> {
    let days = match days {
        None => 30,
        Some(d @ 1..=366) => d,
        Some(_) => return Err(Error::field("days", "must be between 1 and 366")),
    };
    let since = Utc::now() - chrono::Duration::days(i64::from(days));
    let rows = store::usage_rows(ctx.db, user_id, since).await?;
    let mut grouped: BTreeMap<(String, String), UsageRow> = BTreeMap::new();
    for (at, model, p, c, cost) in rows {
        let day = at.format("%Y-%m-%d").to_string();
        let model = model.unwrap_or_default();
        let row = grouped
            .entry((day.clone(), model.clone()))
            .or_insert(UsageRow {
                day,
                model,
                replies: 0,
                prompt_tokens: 0,
                completion_tokens: 0,
                cost_micros: 0,
            });
        row.replies += 1;
        row.prompt_tokens += p;
        row.completion_tokens += c;
        row.cost_micros += cost;
    }
    let items: Vec<UsageRow> = grouped.into_values().rev().collect();
    Ok(UsageResponse {
        total_tokens: items
            .iter()
            .map(|r| r.prompt_tokens + r.completion_tokens)
            .sum(),
        total_cost_micros: items.iter().map(|r| r.cost_micros).sum(),
        items,
        daily_token_quota: crate::quotas::limits(ctx, user_id).await?.tokens_per_day,
    })
}
