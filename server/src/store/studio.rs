//! The QR studio's part of the store: campaigns, scan counters and console sessions.
//! A separate trait, reached through `Store::studio()`, so a backend gains it on its own.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreResult;
use crate::campaigns::{Campaign, NewCampaign, ScanCount, ShortCode};

/// A console sign-in, as stored: hashes only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// Hex SHA-256 of the cookie's secret.
    pub id_hash: String,
    /// Hex SHA-256 of the bearer token signed in with (checked, unrevoked, at every use).
    pub token_hash: String,
    /// The form token for this session (CSRF).
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Which campaigns to list.
#[derive(Debug, Clone, Default)]
pub struct CampaignFilter {
    /// Only this site's.
    pub site_id: Option<String>,
    /// Only ids smaller than this (newest-first pages).
    pub before: Option<String>,
}

#[async_trait]
pub trait StudioStore: Send + Sync {
    /// A `Conflict` when the short code is taken (the caller draws another).
    async fn create_campaign(&self, campaign: NewCampaign) -> StoreResult<Campaign>;
    async fn campaign(&self, id: &str) -> StoreResult<Option<Campaign>>;
    /// Stores an edited campaign ([`Campaign::edited`]): its name, number, text, tags, expiry
    /// and `updated_at`; its id, site, code and creation never change. Returns it as stored
    /// (times to the microsecond). Only if it is still the version `read_at` was the
    /// `updated_at` of (compare and set): else a `Conflict`, and nothing changes, so two
    /// edits made from the same version cannot both land and one undo the other.
    async fn update_campaign(&self, campaign: &Campaign, read_at: Option<Timestamp>) -> StoreResult<Campaign>;
    async fn campaign_by_code(&self, code: &ShortCode) -> StoreResult<Option<Campaign>>;
    /// Newest first, at most `limit`.
    async fn campaigns(&self, filter: &CampaignFilter, limit: u32) -> StoreResult<Vec<Campaign>>;

    /// Adds the counts in one transaction.
    async fn add_scans(&self, counts: &[ScanCount]) -> StoreResult<()>;
    /// A campaign's counters, by day then device.
    async fn scans(&self, campaign_id: &str) -> StoreResult<Vec<ScanCount>>;

    async fn create_console_session(&self, session: ConsoleSession) -> StoreResult<()>;
    /// An unexpired session.
    async fn console_session(&self, id_hash: &str, now: Timestamp) -> StoreResult<Option<ConsoleSession>>;
    async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Removes sessions that expired before `now`.
    async fn delete_expired_console_sessions(&self, now: Timestamp) -> StoreResult<u64>;
}
