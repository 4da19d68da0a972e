//! The PostgreSQL side of the WhatsApp webhook's tables (migration 0020): Meta apps,
//! numbers, opt-out settings, and inbound messages.
//!
//! An inbound message and its events are written in one transaction of their own that
//! first locks the site's `ledger_heads` row, as the event writer does: that serialises it
//! with every other append to the site in every process (so `seq` stays gap-free), and two
//! processes handling the same delivery (Meta retries) cannot both record it: the second
//! waits for the lock, then sees the first's row.

use async_trait::async_trait;
use cornetta_shared::{Action, PhoneNumber};
use jiff::Timestamp;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PgTimestamp, PostgresStore, corrupt, insert_batch, ts};
use crate::store::whatsapp::{InboundMessage, InboundOutcome, MetaApp, OptOutSettings, Outcome, PhoneNumberId, WaNumber, WhatsappStore};
use crate::store::{NewEvent, StoreError, StoreResult};

fn app_from_row(row: &PgRow) -> StoreResult<MetaApp> {
    Ok(MetaApp {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        verify_token_sha256: row.try_get("verify_token_sha256")?,
        secret_key_wrapped: row.try_get("secret_key_wrapped")?,
        secret_sealed: row.try_get("secret_sealed")?,
        created_at: row.try_get::<PgTimestamp, _>("created_at")?.0,
    })
}

fn number_from_row(row: &PgRow) -> StoreResult<WaNumber> {
    Ok(WaNumber {
        phone_number_id: PhoneNumberId::parse(row.try_get("phone_number_id")?).map_err(|e| corrupt("whatsapp number id", e))?,
        site_id: row.try_get("site_id")?,
        phone: PhoneNumber::from_e164(row.try_get("phone")?).map_err(|e| corrupt("whatsapp number", e))?,
        app_id: row.try_get("app_id")?,
        created_at: row.try_get::<PgTimestamp, _>("created_at")?.0,
    })
}

#[async_trait]
impl WhatsappStore for PostgresStore {
    async fn create_app(&self, app: MetaApp) -> StoreResult<MetaApp> {
        sqlx::query(
            "INSERT INTO whatsapp_apps (id, name, verify_token_sha256, secret_key_wrapped, secret_sealed, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&app.id)
        .bind(&app.name)
        .bind(&app.verify_token_sha256)
        .bind(&app.secret_key_wrapped)
        .bind(&app.secret_sealed)
        .bind(ts(app.created_at))
        .execute(&self.pool)
        .await?;
        Ok(app)
    }

    async fn list_apps(&self) -> StoreResult<Vec<MetaApp>> {
        let rows = sqlx::query("SELECT * FROM whatsapp_apps ORDER BY created_at, id").fetch_all(&self.pool).await?;
        rows.iter().map(app_from_row).collect()
    }

    async fn remove_app(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        // Locks the app so that no number is mapped to it while it goes.
        let exists = sqlx::query("SELECT 1 FROM whatsapp_apps WHERE id = $1 FOR UPDATE").bind(id).fetch_optional(&mut *tx).await?.is_some();
        if !exists {
            return Ok(false);
        }
        let numbers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM whatsapp_numbers WHERE app_id = $1").bind(id).fetch_one(&mut *tx).await?;
        if numbers > 0 {
            return Err(StoreError::Conflict(format!(
                "Meta app {id} still serves {numbers} number(s); remove them first (`cornetta whatsapp number list` shows them)"
            )));
        }
        sqlx::query("DELETE FROM whatsapp_apps WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn add_number(&self, number: WaNumber) -> StoreResult<WaNumber> {
        let done = sqlx::query(
            "INSERT INTO whatsapp_numbers (phone_number_id, site_id, phone, app_id, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (phone_number_id) DO NOTHING",
        )
        .bind(number.phone_number_id.as_str())
        .bind(&number.site_id)
        .bind(number.phone.as_str())
        .bind(&number.app_id)
        .bind(ts(number.created_at))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "phone number id {} is already mapped; remove it first with `cornetta whatsapp number remove {}`",
                number.phone_number_id, number.phone_number_id
            )));
        }
        Ok(number)
    }

    async fn number(&self, id: &PhoneNumberId) -> StoreResult<Option<WaNumber>> {
        let row = sqlx::query("SELECT * FROM whatsapp_numbers WHERE phone_number_id = $1").bind(id.as_str()).fetch_optional(&self.pool).await?;
        row.as_ref().map(number_from_row).transpose()
    }

    async fn list_numbers(&self) -> StoreResult<Vec<WaNumber>> {
        let rows = sqlx::query("SELECT * FROM whatsapp_numbers ORDER BY created_at, phone_number_id").fetch_all(&self.pool).await?;
        rows.iter().map(number_from_row).collect()
    }

    async fn remove_number(&self, id: &PhoneNumberId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM whatsapp_numbers WHERE phone_number_id = $1").bind(id.as_str()).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn opt_out_settings(&self, site_id: &str) -> StoreResult<OptOutSettings> {
        let row = sqlx::query("SELECT keywords, reply FROM whatsapp_site_settings WHERE site_id = $1").bind(site_id).fetch_optional(&self.pool).await?;
        let Some(row) = row else { return Ok(OptOutSettings::default()) };
        Ok(OptOutSettings { keywords: row.try_get("keywords")?, reply: row.try_get("reply")? })
    }

    async fn set_opt_out_settings(&self, site_id: &str, settings: OptOutSettings) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO whatsapp_site_settings (site_id, keywords, reply, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (site_id) DO UPDATE SET keywords = excluded.keywords, reply = excluded.reply, updated_at = excluded.updated_at",
        )
        .bind(site_id)
        .bind(&settings.keywords)
        .bind(&settings.reply)
        .bind(ts(Timestamp::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_inbound(&self, message: InboundMessage, events: Vec<NewEvent>) -> StoreResult<InboundOutcome> {
        if let Some(event) = events.iter().find(|e| !matches!(e.action, Action::Confirmed | Action::Withdrawn)) {
            return Err(StoreError::Invalid(format!("a WhatsApp message records confirmations and withdrawals only, not {}", event.action)));
        }
        if let Some(event) = events.iter().find(|e| e.site_id != message.site_id) {
            return Err(StoreError::Invalid(format!("event {} is of another site than its message", event.id)));
        }
        let mut tx = self.pool.begin().await?;
        let head = sqlx::query("SELECT next_seq FROM ledger_heads WHERE site_id = $1 FOR UPDATE")
            .bind(&message.site_id)
            .fetch_optional(&mut *tx)
            .await?;
        if head.is_none() {
            return Err(StoreError::NotFound(format!("site {} has no ledger (no such site)", message.site_id)));
        }
        let seen = sqlx::query("SELECT 1 FROM whatsapp_messages WHERE site_id = $1 AND message_key = $2")
            .bind(&message.site_id)
            .bind(&message.message_key)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if seen {
            // Dropping the transaction rolls it back and releases the lock.
            return Ok(InboundOutcome::Duplicate);
        }
        let mut outcome = message.outcome;
        let mut events = events;
        if let Some(guard) = &message.guard {
            let bound: Option<String> = sqlx::query_scalar(
                "SELECT subject_id FROM consent_events WHERE site_id = $1 AND reference = $2 AND action = 'confirmed' ORDER BY seq LIMIT 1",
            )
            .bind(&message.site_id)
            .bind(guard.reference.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(subject) = bound {
                outcome = if subject == guard.subject_id { Outcome::AlreadyConfirmed } else { Outcome::ReferenceTaken };
                events.clear();
            }
        }
        let batch: Vec<&NewEvent> = events.iter().collect();
        // The event writer's own insert: same seq, leaf hash and head bookkeeping. A
        // withdrawal that another one, just before, already made whole is not written.
        let stored = insert_batch(&mut tx, &batch, false)
            .await?
            .into_iter()
            .filter(|r| !matches!(r, Err(StoreError::AlreadyWithdrawn(_))))
            .collect::<StoreResult<Vec<_>>>()?;
        if outcome == Outcome::Withdrawn && stored.is_empty() {
            outcome = Outcome::NothingToWithdraw;
        }
        sqlx::query(
            "INSERT INTO whatsapp_messages (site_id, message_key, phone_number_id, lookup, kind, outcome, sent_at, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&message.site_id)
        .bind(&message.message_key)
        .bind(message.phone_number_id.as_str())
        .bind(&message.lookup)
        .bind(&message.kind)
        .bind(outcome.as_str())
        .bind(ts(message.sent_at))
        .bind(ts(message.received_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(InboundOutcome::Recorded { outcome, events: stored })
    }

    async fn last_inbound(&self, site_id: &str, lookup: &str) -> StoreResult<Option<Timestamp>> {
        let last: Option<PgTimestamp> = sqlx::query_scalar("SELECT MAX(sent_at) FROM whatsapp_messages WHERE site_id = $1 AND lookup = $2")
            .bind(site_id)
            .bind(lookup)
            .fetch_one(&self.pool)
            .await?;
        Ok(last.map(|t| t.0))
    }

    async fn forget_sender(&self, site_id: Option<&str>, lookup: &str) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE whatsapp_messages SET lookup = NULL WHERE lookup = $1 AND ($2::text IS NULL OR site_id = $2)")
            .bind(lookup)
            .bind(site_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
