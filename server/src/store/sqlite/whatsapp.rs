//! The SQLite side of the WhatsApp webhook's tables (migration 0020): Meta apps, numbers,
//! opt-out settings, and inbound messages recorded by the single writer in the same
//! transaction as the consent events they cause.

use async_trait::async_trait;
use cornetta_shared::{Action, PhoneNumber};
use jiff::Timestamp;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use tokio::sync::oneshot;

use super::{BatchState, Job, SqliteStore, corrupt, from_micros, insert_event, micros};
use crate::store::whatsapp::{InboundMessage, InboundOutcome, MetaApp, OptOutSettings, Outcome, PhoneNumberId, WaNumber, WhatsappStore};
use crate::store::{NewEvent, StoreError, StoreResult};

fn app_from_row(row: &SqliteRow) -> StoreResult<MetaApp> {
    Ok(MetaApp {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        verify_token_sha256: row.try_get("verify_token_sha256")?,
        secret_key_wrapped: row.try_get("secret_key_wrapped")?,
        secret_sealed: row.try_get("secret_sealed")?,
        created_at: from_micros(row.try_get("created_at")?)?,
    })
}

fn number_from_row(row: &SqliteRow) -> StoreResult<WaNumber> {
    Ok(WaNumber {
        phone_number_id: PhoneNumberId::parse(row.try_get("phone_number_id")?).map_err(|e| corrupt("whatsapp number id", e))?,
        site_id: row.try_get("site_id")?,
        phone: PhoneNumber::from_e164(row.try_get("phone")?).map_err(|e| corrupt("whatsapp number", e))?,
        app_id: row.try_get("app_id")?,
        created_at: from_micros(row.try_get("created_at")?)?,
    })
}

#[async_trait]
impl WhatsappStore for SqliteStore {
    async fn create_app(&self, app: MetaApp) -> StoreResult<MetaApp> {
        sqlx::query(
            "INSERT INTO whatsapp_apps (id, name, verify_token_sha256, secret_key_wrapped, secret_sealed, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&app.id)
        .bind(&app.name)
        .bind(&app.verify_token_sha256)
        .bind(&app.secret_key_wrapped)
        .bind(&app.secret_sealed)
        .bind(micros(app.created_at))
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
        let numbers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM whatsapp_numbers WHERE app_id = ?").bind(id).fetch_one(&mut *tx).await?;
        if numbers > 0 {
            return Err(StoreError::Conflict(format!(
                "Meta app {id} still serves {numbers} number(s); remove them first (`cornetta whatsapp number list` shows them)"
            )));
        }
        let done = sqlx::query("DELETE FROM whatsapp_apps WHERE id = ?").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_number(&self, number: WaNumber) -> StoreResult<WaNumber> {
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query("SELECT 1 FROM whatsapp_numbers WHERE phone_number_id = ?")
            .bind(number.phone_number_id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if taken {
            return Err(StoreError::Conflict(format!(
                "phone number id {} is already mapped; remove it first with `cornetta whatsapp number remove {}`",
                number.phone_number_id, number.phone_number_id
            )));
        }
        sqlx::query("INSERT INTO whatsapp_numbers (phone_number_id, site_id, phone, app_id, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(number.phone_number_id.as_str())
            .bind(&number.site_id)
            .bind(number.phone.as_str())
            .bind(&number.app_id)
            .bind(micros(number.created_at))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(number)
    }

    async fn number(&self, id: &PhoneNumberId) -> StoreResult<Option<WaNumber>> {
        let row = sqlx::query("SELECT * FROM whatsapp_numbers WHERE phone_number_id = ?").bind(id.as_str()).fetch_optional(&self.pool).await?;
        row.as_ref().map(number_from_row).transpose()
    }

    async fn list_numbers(&self) -> StoreResult<Vec<WaNumber>> {
        let rows = sqlx::query("SELECT * FROM whatsapp_numbers ORDER BY created_at, phone_number_id").fetch_all(&self.pool).await?;
        rows.iter().map(number_from_row).collect()
    }

    async fn remove_number(&self, id: &PhoneNumberId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM whatsapp_numbers WHERE phone_number_id = ?").bind(id.as_str()).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn opt_out_settings(&self, site_id: &str) -> StoreResult<OptOutSettings> {
        let row = sqlx::query("SELECT keywords, reply FROM whatsapp_site_settings WHERE site_id = ?").bind(site_id).fetch_optional(&self.pool).await?;
        let Some(row) = row else { return Ok(OptOutSettings::default()) };
        let keywords = row
            .try_get::<Option<String>, _>("keywords")?
            .map(|k| serde_json::from_str::<Vec<String>>(&k))
            .transpose()
            .map_err(|e| corrupt("opt-out keywords", e))?;
        Ok(OptOutSettings { keywords, reply: row.try_get("reply")? })
    }

    async fn set_opt_out_settings(&self, site_id: &str, settings: OptOutSettings) -> StoreResult<()> {
        let keywords = settings.keywords.as_ref().map(serde_json::to_string).transpose().map_err(|e| corrupt("opt-out keywords", e))?;
        sqlx::query(
            "INSERT INTO whatsapp_site_settings (site_id, keywords, reply, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (site_id) DO UPDATE SET keywords = excluded.keywords, reply = excluded.reply, updated_at = excluded.updated_at",
        )
        .bind(site_id)
        .bind(keywords)
        .bind(&settings.reply)
        .bind(micros(Timestamp::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_inbound(&self, message: InboundMessage, events: Vec<NewEvent>) -> StoreResult<InboundOutcome> {
        if let Some(event) = events.iter().find(|e| !matches!(e.action, Action::Confirmed | Action::Withdrawn)) {
            return Err(StoreError::Invalid(format!("a WhatsApp message records confirmations and withdrawals only, not {}", event.action)));
        }
        let (reply, answer) = oneshot::channel();
        self.writer.send(Job::Inbound { message, events, reply }).await.map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    async fn last_inbound(&self, site_id: &str, lookup: &str) -> StoreResult<Option<Timestamp>> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(sent_at) FROM whatsapp_messages WHERE site_id = ? AND lookup = ?")
            .bind(site_id)
            .bind(lookup)
            .fetch_one(&self.pool)
            .await?;
        last.map(from_micros).transpose()
    }

    async fn forget_sender(&self, site_id: Option<&str>, lookup: &str) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE whatsapp_messages SET lookup = NULL WHERE lookup = ? AND (? IS NULL OR site_id = ?)")
            .bind(lookup)
            .bind(site_id)
            .bind(site_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Inside the writer's transaction: skips a message already recorded, re-checks the
/// confirmation guard, then writes the message row and its events.
pub(super) fn insert_inbound(
    conn: &rusqlite::Connection,
    message: &InboundMessage,
    events: &[NewEvent],
    batch: &mut BatchState,
) -> rusqlite::Result<StoreResult<InboundOutcome>> {
    use rusqlite::OptionalExtension;
    let seen = conn
        .prepare_cached("SELECT 1 FROM whatsapp_messages WHERE site_id = ? AND message_key = ?")?
        .query_row((&message.site_id, &message.message_key), |_| Ok(()))
        .optional()?
        .is_some();
    if seen {
        return Ok(Ok(InboundOutcome::Duplicate));
    }
    let mut outcome = message.outcome;
    let mut events = events;
    if let Some(guard) = &message.guard {
        let bound: Option<String> = conn
            .prepare_cached("SELECT subject_id FROM consent_events WHERE site_id = ? AND reference = ? AND action = 'confirmed' ORDER BY seq LIMIT 1")?
            .query_row((&message.site_id, guard.reference.as_str()), |r| r.get(0))
            .optional()?;
        if let Some(subject) = bound {
            outcome = if subject == guard.subject_id { Outcome::AlreadyConfirmed } else { Outcome::ReferenceTaken };
            events = &[];
        }
    }
    let mut stored = Vec::with_capacity(events.len());
    for event in events {
        match insert_event(conn, event, batch)? {
            Ok(event) => stored.push(event),
            // A withdrawal that another one, just before, already made whole.
            Err(StoreError::AlreadyWithdrawn(_)) => {}
            // Only grants can be refused otherwise, and `record_inbound` lets none through.
            Err(refused) => return Ok(Err(refused)),
        }
    }
    if outcome == Outcome::Withdrawn && stored.is_empty() {
        outcome = Outcome::NothingToWithdraw;
    }
    conn.prepare_cached(
        "INSERT INTO whatsapp_messages (site_id, message_key, phone_number_id, lookup, kind, outcome, sent_at, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute((
        &message.site_id,
        &message.message_key,
        message.phone_number_id.as_str(),
        &message.lookup,
        &message.kind,
        outcome.as_str(),
        micros(message.sent_at),
        micros(message.received_at),
    ))?;
    Ok(Ok(InboundOutcome::Recorded { outcome, events: stored }))
}
