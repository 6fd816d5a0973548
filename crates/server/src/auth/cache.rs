//! A short-lived cache of checked sessions, so that an authenticated request costs a JWT
//! check and a map lookup instead of two database queries.
//!
//! Revoking a session, changing a password or disabling a user through this instance
//! removes the entries at once; a change made by another process (another instance, the
//! `sheetgpt user` command) is seen within `auth.session_cache_secs`.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::entity::user::Role;

/// The authenticated user as handlers see it.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    /// BCP 47, normalised (`de-DE`); `None` when never set.
    pub locale: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct CachedSession {
    pub user: CurrentUser,
    pub expires_at: DateTime<Utc>,
    checked_at: Instant,
}

pub struct SessionCache {
    ttl: Duration,
    capacity: usize,
    entries: RwLock<HashMap<Uuid, CachedSession>>,
}

impl SessionCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub fn get(&self, session_id: Uuid) -> Option<CachedSession> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let entry = entries.get(&session_id)?;
        (entry.checked_at.elapsed() < self.ttl && entry.expires_at > Utc::now())
            .then(|| entry.clone())
    }

    pub fn insert(&self, session_id: Uuid, user: CurrentUser, expires_at: DateTime<Utc>) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, e| e.checked_at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            session_id,
            CachedSession {
                user,
                expires_at,
                checked_at: Instant::now(),
            },
        );
    }

    pub fn forget_session(&self, session_id: Uuid) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(&session_id);
        }
    }

    pub fn forget_user(&self, user_id: Uuid) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, e| e.user.id != user_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: Uuid) -> CurrentUser {
        CurrentUser {
            id,
            email: "a@example.com".into(),
            role: Role::User,
            locale: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = SessionCache::new(Duration::from_millis(30), 10);
        let sid = Uuid::now_v7();
        cache.insert(
            sid,
            user(Uuid::now_v7()),
            Utc::now() + chrono::Duration::hours(1),
        );
        assert!(cache.get(sid).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(sid).is_none());
    }

    #[test]
    fn forgetting_a_user_drops_all_their_sessions_only() {
        let cache = SessionCache::new(Duration::from_secs(60), 10);
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let later = Utc::now() + chrono::Duration::hours(1);
        let (s1, s2, s3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        cache.insert(s1, user(alice), later);
        cache.insert(s2, user(alice), later);
        cache.insert(s3, user(bob), later);
        cache.forget_user(alice);
        assert!(cache.get(s1).is_none() && cache.get(s2).is_none());
        assert!(cache.get(s3).is_some());
    }

    #[test]
    fn an_expired_session_is_never_served_from_the_cache() {
        let cache = SessionCache::new(Duration::from_secs(60), 10);
        let sid = Uuid::now_v7();
        cache.insert(
            sid,
            user(Uuid::now_v7()),
            Utc::now() - chrono::Duration::seconds(1),
        );
        assert!(cache.get(sid).is_none());
    }
}
