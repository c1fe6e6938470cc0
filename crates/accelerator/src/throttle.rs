//! Rate limits on signing in: per client address, per username, and a growing wait
//! after failed logins. A recovery with a recovery code is a login here: its
//! challenge, its failures and its success count as a login's, so guessing a code
//! is as slow as guessing a password. Setting a recovery code is a password change
//! here: its proof of the root is counted as a login's signature is.
//!
//! Each limit is a token bucket ([`Buckets`]): a burst, refilled at a steady rate; a
//! request finding the bucket empty is refused with `RateLimited` and told when a
//! token will be back (`Retry-After`). Failed logins per username ([`Failures`]) cost
//! nothing up to [`Limits::free_login_failures`]; after that each one doubles the
//! wait before the next attempt, up to [`Limits::login_backoff_max`], so guessing a
//! password is slow while the owner, who knows it, is never kept out for long. A
//! success clears the count.
//!
//! The limits live in this process's memory: with several accelerators behind one
//! address, each keeps its own (the README says so). Every table is bounded: at
//! [`MAX_KEYS`] it first forgets the keys whose limit has fully recovered, and if
//! none has, lets requests with new keys through untracked rather than refuse
//! everyone new (the per-address limit still holds for them).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::Limits;
use crate::error::ApiError;

/// Keys each table tracks at most.
pub const MAX_KEYS: usize = 100_000;
/// A username with no failed login for this long starts afresh.
const FAILURES_FORGOTTEN_AFTER: Duration = Duration::from_secs(15 * 60);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One bucket's state.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens left when last looked at.
    tokens: f64,
    /// When that was.
    at: Instant,
}

/// Token buckets by key.
pub struct Buckets<K> {
    /// The buckets of the keys seen lately.
    map: Mutex<HashMap<K, Bucket>>,
    /// Tokens a full bucket holds.
    burst: f64,
    /// Tokens added per second.
    per_second: f64,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// Buckets holding `burst` tokens, refilled at `per_second`.
    pub fn new(burst: u32, per_second: f64) -> Self {
        Buckets { map: Mutex::new(HashMap::new()), burst: f64::from(burst.max(1)), per_second: per_second.max(1e-6) }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        (bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_second).min(self.burst)
    }

    /// Takes a token for `key`, or says how long until one is back.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut map = lock(&self.map);
        if !map.contains_key(key) && map.len() >= MAX_KEYS {
            map.retain(|_, bucket| self.refilled(*bucket, now) < self.burst);
            if map.len() >= MAX_KEYS {
                return Ok(());
            }
        }
        let bucket = map.entry(key.clone()).or_insert(Bucket { tokens: self.burst, at: now });
        let tokens = self.refilled(*bucket, now);
        if tokens >= 1.0 {
            *bucket = Bucket { tokens: tokens - 1.0, at: now };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second))
        }
    }
}

/// Failed logins of one username.
#[derive(Debug, Clone, Copy)]
struct Failed {
    /// Failures since the last success (or since they were forgotten).
    count: u32,
    /// When the latest happened.
    last: Instant,
}

/// Failed logins per username, and the wait they impose.
pub struct Failures {
    /// Usernames with recent failures.
    map: Mutex<HashMap<String, Failed>>,
    /// Failures that impose no wait.
    free: u32,
    /// The first wait.
    base: Duration,
    /// The longest wait.
    max: Duration,
}

impl Failures {
    /// The wait imposed after `count` failures.
    fn wait(&self, count: u32) -> Duration {
        if count <= self.free {
            return Duration::ZERO;
        }
        let doublings = (count - self.free - 1).min(30);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// How long `username` must still wait before its next login, if at all.
    pub fn check(&self, username: &str, now: Instant) -> Result<(), Duration> {
        let map = lock(&self.map);
        let Some(failed) = map.get(username) else { return Ok(()) };
        let until = failed.last + self.wait(failed.count);
        if now < until { Err(until - now) } else { Ok(()) }
    }

    /// Counts a failed login.
    pub fn failed(&self, username: &str, now: Instant) {
        let mut map = lock(&self.map);
        if !map.contains_key(username) && map.len() >= MAX_KEYS {
            map.retain(|_, f| now.saturating_duration_since(f.last) < FAILURES_FORGOTTEN_AFTER);
            if map.len() >= MAX_KEYS {
                return;
            }
        }
        let failed = map.entry(username.to_owned()).or_insert(Failed { count: 0, last: now });
        if now.saturating_duration_since(failed.last) >= FAILURES_FORGOTTEN_AFTER {
            failed.count = 0;
        }
        failed.count = failed.count.saturating_add(1);
        failed.last = now;
    }

    /// Clears the count after a successful login.
    pub fn succeeded(&self, username: &str) {
        lock(&self.map).remove(username);
    }
}

/// Every sign-in limit of one accelerator.
pub struct Throttle {
    /// Every sign-in request, per client address.
    by_address: Buckets<IpAddr>,
    /// Sign-ups, per client address.
    signups: Buckets<IpAddr>,
    /// Challenges (for a login or a recovery), password changes, key publications
    /// and recovery codes set, per username.
    by_username: Buckets<String>,
    /// Failed logins, recoveries, key publications and proofs of the root, per
    /// username.
    failures: Failures,
}

/// `RateLimited`, telling the client when to try again.
pub fn refused(what: &str, wait: Duration) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::rate_limited(format!("too many {what}; try again in {secs} s"), wait)
}

impl Throttle {
    /// The limits of `limits`, nothing counted yet.
    pub fn new(limits: &Limits) -> Self {
        Throttle {
            by_address: Buckets::new(limits.auth_burst_per_address, limits.auth_per_second_per_address),
            signups: Buckets::new(limits.signup_burst_per_address, limits.signups_per_second_per_address),
            by_username: Buckets::new(limits.auth_burst_per_username, limits.auth_per_second_per_username),
            failures: Failures {
                map: Mutex::new(HashMap::new()),
                free: limits.free_login_failures,
                base: limits.login_backoff_base,
                max: limits.login_backoff_max,
            },
        }
    }

    /// Any sign-in request from `address` (none known: not limited by address).
    pub fn address(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        match address {
            Some(address) => {
                self.by_address.take(&address, Instant::now()).map_err(|w| refused("sign-in requests from here", w))
            }
            None => Ok(()),
        }
    }

    /// A sign-up from `address`.
    pub fn signup(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        self.address(address)?;
        match address {
            Some(address) => self.signups.take(&address, Instant::now()).map_err(|w| refused("sign-ups from here", w)),
            None => Ok(()),
        }
    }

    /// A challenge (for a login or a recovery), a password change, a key publication
    /// or a recovery code set for `username`: its bucket, and the wait its failed
    /// logins impose.
    pub fn username(&self, username: &str) -> Result<(), ApiError> {
        self.login_allowed(username)?;
        self.by_username
            .take(&username.to_owned(), Instant::now())
            .map_err(|w| refused("sign-in attempts for this username", w))
    }

    /// The wait `username`'s failed logins impose now, if any.
    pub fn login_allowed(&self, username: &str) -> Result<(), ApiError> {
        self.failures.check(username, Instant::now()).map_err(|w| refused("failed sign-ins for this username", w))
    }

    /// Counts a login's outcome for `username`.
    pub fn login_outcome(&self, username: &str, ok: bool) {
        if ok {
            self.failures.succeeded(username);
        } else {
            self.failures.failed(username, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let buckets = Buckets::<u8>::new(3, 2.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            buckets.take(&1, t0).unwrap();
        }
        let wait = buckets.take(&1, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        buckets.take(&2, t0).unwrap();
        buckets.take(&1, t0 + Duration::from_millis(500)).unwrap();
        assert!(buckets.take(&1, t0 + Duration::from_millis(500)).is_err());
        // Refilled, but never past the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            buckets.take(&1, later).unwrap();
        }
        assert!(buckets.take(&1, later).is_err());
    }

    #[test]
    fn failed_logins_double_the_wait_up_to_the_cap() {
        let failures = Failures {
            map: Mutex::new(HashMap::new()),
            free: 2,
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
        };
        let waits: Vec<u64> = (0..8).map(|n| failures.wait(n).as_secs()).collect();
        assert_eq!(waits, [0, 0, 0, 1, 2, 4, 8, 8]);
        let t0 = Instant::now();
        for _ in 0..4 {
            failures.failed("ada", t0);
        }
        assert_eq!(failures.check("ada", t0), Err(Duration::from_secs(2)));
        assert!(failures.check("ada", t0 + Duration::from_secs(2)).is_ok());
        assert!(failures.check("bob", t0).is_ok());
        failures.succeeded("ada");
        assert!(failures.check("ada", t0).is_ok());
        // Long quiet: the count starts again.
        for _ in 0..4 {
            failures.failed("eve", t0);
        }
        failures.failed("eve", t0 + FAILURES_FORGOTTEN_AFTER);
        assert!(failures.check("eve", t0 + FAILURES_FORGOTTEN_AFTER).is_ok());
    }

    #[test]
    fn a_full_table_forgets_recovered_keys_first() {
        let buckets = Buckets::<u32>::new(1, 1.0);
        let t0 = Instant::now();
        for key in 0..MAX_KEYS as u32 {
            buckets.take(&key, t0).unwrap();
        }
        // All empty: a new key passes untracked, an old one is still limited.
        buckets.take(&u32::MAX, t0).unwrap();
        assert!(buckets.take(&0, t0).is_err());
        // A second later every bucket has recovered and is forgotten for the new key.
        let t1 = t0 + Duration::from_secs(1);
        buckets.take(&u32::MAX, t1).unwrap();
        assert_eq!(lock(&buckets.map).len(), 1);
    }
}
