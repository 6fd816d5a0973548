//! Slows down repeated failed logins, per account and per client address.
//!
//! Each failure takes one cell from a GCRA bucket (governor) of `burst` cells that refills
//! over the configured window. When a failure finds the bucket empty, the key is blocked
//! until the next cell is due: attempts before then are answered 429 with `Retry-After`
//! without checking the password. A patient guesser gets one try per refill interval.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct LoginThrottle {
    per_account: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<String>,
    blocked: Mutex<HashMap<String, Instant>>,
    clock: DefaultClock,
}

impl LoginThrottle {
    pub fn new(account_burst: u32, ip_burst: u32, window: Duration) -> Self {
        Self {
            per_account: RateLimiter::keyed(quota(account_burst, window)),
            per_ip: RateLimiter::keyed(quota(ip_burst, window)),
            blocked: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when the account or the address is blocked.
    pub fn check(&self, account: &str, ip: &str) -> Result<(), Duration> {
        let Ok(mut blocked) = self.blocked.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let wait = [account_key(account), ip_key(ip)]
            .iter()
            .filter_map(|k| blocked.get(k).copied())
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        if blocked.len() > 10_000 {
            blocked.retain(|_, until| *until > now);
        }
        wait.map_or(Ok(()), Err)
    }

    /// Counts a failed login; `Some(wait)` when this failure used up the allowance.
    pub fn record_failure(&self, account: &str, ip: &str) -> Option<Duration> {
        let now = self.clock.now();
        let mut longest: Option<Duration> = None;
        for (limiter, key) in [
            (&self.per_account, account_key(account)),
            (&self.per_ip, ip_key(ip)),
        ] {
            if let Err(not_until) = limiter.check_key(&key) {
                let wait = not_until.wait_time_from(now).max(Duration::from_secs(1));
                if let Ok(mut blocked) = self.blocked.lock() {
                    blocked.insert(key, Instant::now() + wait);
                }
                longest = Some(longest.map_or(wait, |l| l.max(wait)));
            }
        }
        longest
    }

    /// Drops state of keys that have fully recovered (called periodically).
    pub fn prune(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_after_the_allowance_blocks_the_account() {
        let t = LoginThrottle::new(3, 100, Duration::from_secs(300));
        for _ in 0..3 {
            assert!(t.check("a@x.io", "1.1.1.1").is_ok());
            assert!(t.record_failure("a@x.io", "1.1.1.1").is_none());
        }
        let wait = t.record_failure("a@x.io", "1.1.1.1");
        assert!(wait.is_some_and(|w| w > Duration::from_secs(60)));
        assert!(
            t.check("a@x.io", "2.2.2.2").is_err(),
            "blocked from any address"
        );
        assert!(
            t.check("b@x.io", "1.1.1.1").is_ok(),
            "other accounts unaffected"
        );
    }

    #[test]
    fn an_address_failing_on_many_accounts_is_blocked() {
        let t = LoginThrottle::new(100, 2, Duration::from_secs(300));
        t.record_failure("a@x.io", "9.9.9.9");
        t.record_failure("b@x.io", "9.9.9.9");
        assert!(t.record_failure("c@x.io", "9.9.9.9").is_some());
        assert!(t.check("d@x.io", "9.9.9.9").is_err());
    }
}
