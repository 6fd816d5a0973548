//! The sign-in brake: slows down repeated failed sign-ins without handing strangers a way to
//! keep an owner out of their account.
//!
//! Three allowances of failures, each a GCRA bucket (governor) that refills over the window:
//! - per account *and* client address, tight (5 by default): guessing one account from one
//!   address is refused until a cell is back (one more try every window / allowance);
//! - per client address, whatever the account (20): one address trying many accounts;
//! - per account from all addresses (100): guessing from many addresses. It only slows
//!   sign-ins from addresses that never signed in to the account; the owner's own addresses
//!   (see `sessions::signed_in_from`) are not held by it, so a stranger's failures cannot
//!   lock the owner out, while a distributed guesser gets one try per refill interval.
//!
//! This is what the large identity providers do (a "familiar location" is not locked out by
//! failures from unfamiliar ones). A key whose allowance runs out is blocked until its next
//! cell is due; attempts before then are answered 429 with `Retry-After` without checking
//! the password.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::AuthConfig;

pub struct LoginThrottle {
    per_pair: DefaultKeyedRateLimiter<String>,
    per_account: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<String>,
    blocked: Mutex<HashMap<String, Instant>>,
    clock: DefaultClock,
}

/// A sign-in the brake holds back, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    pub wait: Duration,
    /// Only the per-account allowance is used up: addresses the account signed in from
    /// before may still try.
    pub account_only: bool,
}

impl LoginThrottle {
    pub fn new(config: &AuthConfig) -> Self {
        let window = Duration::from_secs(config.login_failure_window_secs.max(1));
        Self {
            per_pair: RateLimiter::keyed(quota(config.login_failures_per_account_and_ip, window)),
            per_account: RateLimiter::keyed(quota(config.login_failures_per_account, window)),
            per_ip: RateLimiter::keyed(quota(config.login_failures_per_ip, window)),
            blocked: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// `Err` when this account, from this address, may not try now.
    pub fn check(&self, account: &str, ip: &str) -> Result<(), Held> {
        let Ok(mut blocked) = self.blocked.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let wait_for = |key: &str| {
            blocked
                .get(key)
                .filter(|until| **until > now)
                .map(|until| *until - now)
        };
        let hard = [pair_key(account, ip), ip_key(ip)]
            .iter()
            .filter_map(|k| wait_for(k))
            .max();
        let result = match (hard, wait_for(&account_key(account))) {
            (Some(wait), _) => Err(Held {
                wait,
                account_only: false,
            }),
            (None, Some(wait)) => Err(Held {
                wait,
                account_only: true,
            }),
            (None, None) => Ok(()),
        };
        if blocked.len() > 10_000 {
            blocked.retain(|_, until| *until > now);
        }
        result
    }

    /// Counts a failed sign-in; `Some` when this failure used up an allowance.
    pub fn record_failure(&self, account: &str, ip: &str) -> Option<Held> {
        let now = self.clock.now();
        let mut hard: Option<Duration> = None;
        let mut account_wait: Option<Duration> = None;
        for (limiter, key, is_account) in [
            (&self.per_pair, pair_key(account, ip), false),
            (&self.per_ip, ip_key(ip), false),
            (&self.per_account, account_key(account), true),
        ] {
            if let Err(not_until) = limiter.check_key(&key) {
                let wait = not_until.wait_time_from(now).max(Duration::from_secs(1));
                if let Ok(mut blocked) = self.blocked.lock() {
                    blocked.insert(key, Instant::now() + wait);
                }
                let slot = if is_account {
                    &mut account_wait
                } else {
                    &mut hard
                };
                *slot = Some(slot.map_or(wait, |w| w.max(wait)));
            }
        }
        match (hard, account_wait) {
            (Some(wait), _) => Some(Held {
                wait,
                account_only: false,
            }),
            (None, Some(wait)) => Some(Held {
                wait,
                account_only: true,
            }),
            (None, None) => None,
        }
    }

    /// Drops state of keys that have fully recovered (called periodically).
    pub fn prune(&self) {
        self.per_pair.retain_recent();
        self.per_account.retain_recent();
        self.per_ip.retain_recent();
        if let Ok(mut blocked) = self.blocked.lock() {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
        }
    }
}

fn quota(burst: u32, window: Duration) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    let period = (window / burst.get()).max(Duration::from_millis(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

fn account_key(account: &str) -> String {
    format!("account:{account}")
}

fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

fn pair_key(account: &str, ip: &str) -> String {
    format!("pair:{ip} {account}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(pair: u32, account: u32, ip: u32) -> LoginThrottle {
        let mut config = crate::config::Config::default().auth;
        config.login_failures_per_account_and_ip = pair;
        config.login_failures_per_account = account;
        config.login_failures_per_ip = ip;
        config.login_failure_window_secs = 300;
        LoginThrottle::new(&config)
    }

    #[test]
    fn the_failure_after_the_allowance_blocks_that_account_from_that_address_only() {
        let t = throttle(3, 100, 100);
        for _ in 0..3 {
            assert!(t.check("a@x.io", "1.1.1.1").is_ok());
            assert!(t.record_failure("a@x.io", "1.1.1.1").is_none());
        }
        let held = t.record_failure("a@x.io", "1.1.1.1");
        assert!(held.is_some_and(|h| h.wait > Duration::from_secs(60) && !h.account_only));
        assert!(t.check("a@x.io", "1.1.1.1").is_err());
        assert!(t.check("a@x.io", "2.2.2.2").is_ok(), "the owner elsewhere");
        assert!(t.check("b@x.io", "1.1.1.1").is_ok(), "other accounts");
    }

    #[test]
    fn an_address_failing_on_many_accounts_is_blocked() {
        let t = throttle(100, 100, 2);
        t.record_failure("a@x.io", "9.9.9.9");
        t.record_failure("b@x.io", "9.9.9.9");
        assert!(t.record_failure("c@x.io", "9.9.9.9").is_some());
        assert!(t.check("d@x.io", "9.9.9.9").is_err_and(|h| !h.account_only));
    }

    #[test]
    fn failures_from_many_addresses_hold_the_account_for_unfamiliar_addresses() {
        let t = throttle(100, 4, 100);
        for i in 0..4 {
            assert!(t.record_failure("a@x.io", &format!("10.0.0.{i}")).is_none());
        }
        let held = t.record_failure("a@x.io", "10.0.0.9");
        assert!(held.is_some_and(|h| h.account_only), "{held:?}");
        assert!(
            t.check("a@x.io", "10.0.0.77")
                .is_err_and(|h| h.account_only)
        );
        assert!(t.check("b@x.io", "10.0.0.77").is_ok());
    }
}
