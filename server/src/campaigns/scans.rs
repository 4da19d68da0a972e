//! Counting scans: each redirect adds one to an in-memory counter per (campaign, UTC day,
//! device class); a background task writes the counters to the store every second in one
//! transaction, and at shutdown. Stats add what is still pending, so they are exact while
//! the server runs. A crash loses at most the last second of counts, never a consent (the
//! redirect acknowledges nothing). No address or identifier of the scanner is kept.
//!
//! Also the quota of unknown codes per client address, which makes guessing codes slow
//! (see the module comment of `campaigns`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jiff::civil::Date;

use super::{DeviceClass, ScanCount};
use crate::store::DynStore;

/// How often pending counts are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

type Key = (String, Date, DeviceClass);

#[derive(Debug, Default)]
pub struct ScanCounter {
    pending: Mutex<HashMap<Key, u64>>,
}

impl ScanCounter {
    pub fn record(&self, campaign_id: &str, day: Date, device: DeviceClass) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        *pending.entry((campaign_id.to_owned(), day, device)).or_insert(0) += 1;
    }

    /// Counts not yet written, for one campaign.
    pub fn pending_for(&self, campaign_id: &str) -> Vec<ScanCount> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .iter()
            .filter(|((id, _, _), _)| id == campaign_id)
            .map(|((id, day, device), n)| ScanCount { campaign_id: id.clone(), day: *day, device: *device, scans: *n })
            .collect()
    }

    /// Writes what is pending; on failure the counts go back to be tried again.
    pub async fn flush(&self, store: &DynStore) {
        let taken: Vec<ScanCount> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().map(|((campaign_id, day, device), scans)| ScanCount { campaign_id, day, device, scans }).collect()
        };
        if taken.is_empty() {
            return;
        }
        let Some(studio) = store.studio() else { return };
        if let Err(err) = studio.add_scans(&taken).await {
            tracing::warn!(error = %err, counters = taken.len(), "writing scan counts failed; keeping them for the next try");
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for c in taken {
                *pending.entry((c.campaign_id, c.day, c.device)).or_insert(0) += c.scans;
            }
        }
    }

    /// Starts the background writer (inside a tokio runtime).
    pub fn spawn_flusher(self: &Arc<Self>, store: DynStore) {
        let counter = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                counter.flush(&store).await;
            }
        });
    }
}

/// Unknown or malformed short codes per client address per minute.
pub struct MissLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for MissLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MissLimiter")
    }
}

impl MissLimiter {
    pub fn new(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Self { limiter: RateLimiter::keyed(Quota::per_minute(n).allow_burst(n)) }
    }

    /// Counts a miss; false when the address has used its quota.
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.limiter.check_key(&ip).is_ok()
    }

    pub fn forget_quiet(&self) {
        self.limiter.retain_recent();
    }
}

/// What the studio keeps in memory: scan counters and the miss quota.
#[derive(Debug)]
pub struct Studio {
    pub scans: Arc<ScanCounter>,
    pub misses: MissLimiter,
}

impl Studio {
    pub fn new(misses_per_minute: u32) -> Self {
        Self { scans: Arc::new(ScanCounter::default()), misses: MissLimiter::new(misses_per_minute) }
    }
}
