//! `StudioStore` for PostgreSQL: campaigns, scan counters (upserted in one transaction) and
//! console sessions.

use async_trait::async_trait;
use cornetta_shared::PhoneNumber;
use jiff::Timestamp;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::postgres::{PgTimestamp, PostgresStore};
use super::studio::{CampaignFilter, ConsoleSession, StudioStore};
use super::{StoreError, StoreResult};
use crate::campaigns::{Campaign, NewCampaign, ScanCount, ShortCode, Tag};

fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {err}"))
}


pub(crate) fn campaign_from_row(row: &PgRow) -> StoreResult<Campaign> {
    let tag = |col: &str| -> StoreResult<Option<Tag>> {
        row.try_get::<Option<String>, _>(col)?.map(|t| Tag::parse(col, &t).map_err(|e| corrupt("campaign tag", e))).transpose()
    };
    let code: Option<String> = row.try_get("code")?;
    Ok(Campaign {
        id: row.try_get("id")?,
        site_id: row.try_get("site_id")?,
        name: row.try_get("name")?,
        phone: PhoneNumber::from_e164(row.try_get("phone")?).map_err(|e| corrupt("campaign phone", e))?,
        text: row.try_get("text")?,
        source: tag("source")?,
        medium: tag("medium")?,
        code: code.map(|c| ShortCode::parse(&c).ok_or_else(|| corrupt("campaign code", &c))).transpose()?,
        expires_at: row.try_get::<Option<PgTimestamp>, _>("expires_at")?.map(|t| t.0),
        created_by: row.try_get("created_by")?,
        created_at: row.try_get::<PgTimestamp, _>("created_at")?.0,
        updated_at: row.try_get::<Option<PgTimestamp>, _>("updated_at")?.map(|t| t.0),
    })
}

fn scan_from_row(row: &PgRow) -> StoreResult<ScanCount> {
    let day: String = row.try_get("day")?;
    let device: String = row.try_get("device")?;
    Ok(ScanCount {
        campaign_id: row.try_get("campaign_id")?,
        day: day.parse().map_err(|e| corrupt("scan day", e))?,
        device: device.parse().map_err(|e| corrupt("scan device", e))?,
        scans: row.try_get::<i64, _>("scans")? as u64,
    })
}

fn session_from_row(row: &PgRow) -> StoreResult<ConsoleSession> {
    Ok(ConsoleSession {
        id_hash: row.try_get("id_hash")?,
        token_hash: row.try_get("token_hash")?,
        csrf: row.try_get("csrf")?,
        created_at: row.try_get::<PgTimestamp, _>("created_at")?.0,
        expires_at: row.try_get::<PgTimestamp, _>("expires_at")?.0,
    })
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl StudioStore for PostgresStore {
    async fn create_campaign(&self, c: NewCampaign) -> StoreResult<Campaign> {
        let done = sqlx::query(
            "INSERT INTO campaigns (id, site_id, code, name, phone, text, source, medium, expires_at, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&c.id)
        .bind(&c.site_id)
        .bind(c.code.as_ref().map(ShortCode::as_str))
        .bind(&c.name)
        .bind(c.phone.as_str())
        .bind(&c.text)
        .bind(c.source.as_ref().map(Tag::as_str))
        .bind(c.medium.as_ref().map(Tag::as_str))
        .bind(c.expires_at.map(PgTimestamp))
        .bind(&c.created_by)
        .bind(PgTimestamp(c.created_at))
        .execute(self.pool())
        .await;
        match done {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => return Err(StoreError::Conflict("that short code is taken".into())),
            Err(err) => return Err(err.into()),
        }
        self.campaign(&c.id).await?.ok_or_else(|| StoreError::NotFound("campaign vanished after insert".into()))
    }

    async fn update_campaign(&self, c: &Campaign, read_at: Option<Timestamp>) -> StoreResult<Campaign> {
        let done = sqlx::query(
            "UPDATE campaigns SET name = $1, phone = $2, text = $3, source = $4, medium = $5, expires_at = $6, updated_at = $7 WHERE id = $8 AND updated_at IS NOT DISTINCT FROM $9",
        )
        .bind(&c.name)
        .bind(c.phone.as_str())
        .bind(&c.text)
        .bind(c.source.as_ref().map(Tag::as_str))
        .bind(c.medium.as_ref().map(Tag::as_str))
        .bind(c.expires_at.map(PgTimestamp))
        .bind(c.updated_at.map(PgTimestamp))
        .bind(&c.id)
        .bind(read_at.map(PgTimestamp))
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(match self.campaign(&c.id).await? {
                Some(_) => StoreError::Conflict(format!("campaign {} changed since it was read", c.id)),
                None => StoreError::NotFound(format!("no campaign {}", c.id)),
            });
        }
        self.campaign(&c.id).await?.ok_or_else(|| StoreError::NotFound("campaign vanished after update".into()))
    }

    async fn campaign(&self, id: &str) -> StoreResult<Option<Campaign>> {
        let row = sqlx::query("SELECT * FROM campaigns WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(campaign_from_row).transpose()
    }

    async fn campaign_by_code(&self, code: &ShortCode) -> StoreResult<Option<Campaign>> {
        let row = sqlx::query("SELECT * FROM campaigns WHERE code = $1").bind(code.as_str()).fetch_optional(self.pool()).await?;
        row.as_ref().map(campaign_from_row).transpose()
    }

    async fn campaigns(&self, filter: &CampaignFilter, limit: u32) -> StoreResult<Vec<Campaign>> {
        let rows = sqlx::query(
            "SELECT * FROM campaigns WHERE ($1::text IS NULL OR site_id = $1) AND ($2::text IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(&filter.site_id)
        .bind(&filter.before)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(campaign_from_row).collect()
    }

    async fn add_scans(&self, counts: &[ScanCount]) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        for c in counts {
            sqlx::query(
                "INSERT INTO campaign_scans (campaign_id, day, device, scans) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (campaign_id, day, device) DO UPDATE SET scans = campaign_scans.scans + excluded.scans",
            )
            .bind(&c.campaign_id)
            .bind(c.day.to_string())
            .bind(c.device.as_str())
            .bind(c.scans as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn scans(&self, campaign_id: &str) -> StoreResult<Vec<ScanCount>> {
        let rows = sqlx::query("SELECT * FROM campaign_scans WHERE campaign_id = $1 ORDER BY day, device")
            .bind(campaign_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(scan_from_row).collect()
    }

    async fn create_console_session(&self, s: ConsoleSession) -> StoreResult<()> {
        sqlx::query("INSERT INTO console_sessions (id_hash, token_hash, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&s.id_hash)
            .bind(&s.token_hash)
            .bind(&s.csrf)
            .bind(PgTimestamp(s.created_at))
            .bind(PgTimestamp(s.expires_at))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn console_session(&self, id_hash: &str, now: Timestamp) -> StoreResult<Option<ConsoleSession>> {
        let row = sqlx::query("SELECT * FROM console_sessions WHERE id_hash = $1 AND expires_at > $2")
            .bind(id_hash)
            .bind(PgTimestamp(now))
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1").bind(id_hash).execute(self.pool()).await?;
        Ok(())
    }

    async fn delete_expired_console_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1").bind(PgTimestamp(now)).execute(self.pool()).await?;
        Ok(done.rows_affected())
    }
}
