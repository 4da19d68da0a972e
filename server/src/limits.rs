//! Rate limits per client address, part of the API like body and length limits: public
//! writes (consents, withdrawals) and public reads (links, QR codes, widget config) each
//! have a per-minute quota; past it the answer is 429 with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Requests per minute per client address.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    pub public_writes_per_minute: u32,
    pub public_reads_per_minute: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self { public_writes_per_minute: 120, public_reads_per_minute: 1200 }
    }
}

pub struct RateLimits {
    writes: DefaultKeyedRateLimiter<IpAddr>,
    reads: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimits")
    }
}

/// Which quota a request counts against.
#[derive(Debug, Clone, Copy)]
pub enum Bucket {
    PublicWrite,
    PublicRead,
}

impl RateLimits {
    pub fn new(settings: LimitSettings) -> Self {
        let quota = |per_minute: u32| {
            let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
            // The whole minute's allowance may come as one burst.
            Quota::per_minute(n).allow_burst(n)
        };
        Self {
            writes: RateLimiter::keyed(quota(settings.public_writes_per_minute)),
            reads: RateLimiter::keyed(quota(settings.public_reads_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    pub fn check(&self, bucket: Bucket, ip: IpAddr) -> Result<(), ApiError> {
        let limiter = match bucket {
            Bucket::PublicWrite => &self.writes,
            Bucket::PublicRead => &self.reads,
        };
        limiter.check_key(&ip).map_err(|not_until| {
            let wait: Duration = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited { retry_after_secs: wait.as_secs().max(1) }
        })
    }

    /// Forgets addresses that have been quiet, so memory stays bounded.
    pub fn forget_quiet(&self) {
        self.writes.retain_recent();
        self.reads.retain_recent();
    }
}
