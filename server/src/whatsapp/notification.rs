//! Reading a webhook notification's body, after its signature held: Meta's
//! `whatsapp_business_account` shape, read leniently. Unknown fields, unknown message types,
//! `statuses[]`, other `field`s and other objects are counted and ignored; only a body that is
//! not JSON (or not a JSON object) is refused. Each message is read on its own, so one odd
//! message never sinks the rest of a batch.

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use cornetta_shared::PhoneNumber;

use crate::store::whatsapp::PhoneNumberId;

/// The only object this endpoint handles (Meta: "For Cloud API, the object is always
/// whatsapp_business_account").
pub const OBJECT: &str = "whatsapp_business_account";
/// The change field carrying messages and statuses.
pub const FIELD_MESSAGES: &str = "messages";
/// Longest message id we accept (wamids are ~60 characters).
pub const MAX_MESSAGE_ID_LEN: usize = 256;
/// Longest text we look at and keep as evidence: WhatsApp messages are at most 4096 characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// A body that cannot be a notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedBody {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is JSON but not an object (Meta sends {{\"object\": \"whatsapp_business_account\", \"entry\": [...]}})")]
    NotAnObject,
}

/// One inbound message, as far as Cornetta needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The business number it was sent to.
    pub phone_number_id: PhoneNumberId,
    /// Meta's message id (`wamid.…`): the idempotency key (Meta retries deliveries).
    pub id: String,
    /// The sender, from `from` (digits without `+`). `None` when Meta withheld the number
    /// (a user with a username is identified only by a business-scoped user id).
    pub from: Option<PhoneNumber>,
    /// `timestamp`: Unix seconds, as a string in Meta's payloads.
    pub sent_at: Option<Timestamp>,
    /// `type`: text, image, button, interactive, reaction, …
    pub kind: String,
    /// `text.body` of a text message.
    pub text: Option<String>,
    /// `button.text` of a quick-reply button tap (e.g. a template's "STOP" button).
    pub button_text: Option<String>,
}

/// What a notification holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notification {
    pub messages: Vec<Message>,
    /// `statuses[]` items (sent, delivered, read, failed of the business's own messages).
    pub statuses: usize,
    /// Things skipped, with why (another object, another field, an unreadable message…).
    pub skipped: Vec<&'static str>,
}

#[derive(Debug, Deserialize)]
struct RawNotification {
    #[serde(default)]
    object: Option<Value>,
    #[serde(default)]
    entry: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RawEntry {
    #[serde(default)]
    changes: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RawChange {
    #[serde(default)]
    field: Option<Value>,
    #[serde(default)]
    value: Option<RawValue>,
}

#[derive(Debug, Deserialize)]
struct RawValue {
    #[serde(default)]
    metadata: Option<RawMetadata>,
    #[serde(default)]
    messages: Option<Value>,
    #[serde(default)]
    statuses: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RawMetadata {
    #[serde(default)]
    phone_number_id: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RawMessage {
    id: String,
    #[serde(default)]
    from: Option<Value>,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default, rename = "type")]
    kind: Option<Value>,
    #[serde(default)]
    text: Option<RawText>,
    #[serde(default)]
    button: Option<RawButton>,
}

#[derive(Debug, Deserialize)]
struct RawText {
    #[serde(default)]
    body: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RawButton {
    #[serde(default)]
    text: Option<Value>,
}

fn as_array(value: Option<Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

fn as_string(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str)
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_TEXT_CHARS).collect()
}

/// `from` is the sender's number in international form without `+` (e.g. "16505551234").
fn sender(from: Option<&Value>) -> Option<PhoneNumber> {
    let digits = as_string(from)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    PhoneNumber::from_e164(&format!("+{digits}")).ok()
}

/// Unix seconds, as a string (documented) or a number (tolerated).
fn unix_seconds(value: Option<&Value>) -> Option<Timestamp> {
    let seconds = match value? {
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    Timestamp::from_second(seconds).ok()
}

/// Reads a body whose signature already held.
pub fn parse(body: &[u8]) -> Result<Notification, MalformedBody> {
    let value: Value = serde_json::from_slice(body).map_err(|e| MalformedBody::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(MalformedBody::NotAnObject);
    }
    let mut out = Notification::default();
    let Ok(raw) = serde_json::from_value::<RawNotification>(value) else {
        out.skipped.push("unreadable notification");
        return Ok(out);
    };
    if as_string(raw.object.as_ref()) != Some(OBJECT) {
        out.skipped.push("not a whatsapp_business_account notification");
        return Ok(out);
    }
    for entry in as_array(raw.entry) {
        let Ok(entry) = serde_json::from_value::<RawEntry>(entry) else {
            out.skipped.push("unreadable entry");
            continue;
        };
        for change in as_array(entry.changes) {
            read_change(change, &mut out);
        }
    }
    Ok(out)
}

fn read_change(change: Value, out: &mut Notification) {
    let Ok(change) = serde_json::from_value::<RawChange>(change) else {
        out.skipped.push("unreadable change");
        return;
    };
    if as_string(change.field.as_ref()) != Some(FIELD_MESSAGES) {
        out.skipped.push("a change of another field");
        return;
    }
    let Some(value) = change.value else {
        out.skipped.push("a change without a value");
        return;
    };
    out.statuses += as_array(value.statuses).len();
    let messages = as_array(value.messages);
    if messages.is_empty() {
        return;
    }
    let phone_number_id = value
        .metadata
        .as_ref()
        .and_then(|m| as_string(m.phone_number_id.as_ref()))
        .and_then(|id| PhoneNumberId::parse(id).ok());
    let Some(phone_number_id) = phone_number_id else {
        out.skipped.extend(messages.iter().map(|_| "a message without metadata.phone_number_id"));
        return;
    };
    for message in messages {
        match read_message(message, &phone_number_id) {
            Some(message) => out.messages.push(message),
            None => out.skipped.push("an unreadable message"),
        }
    }
}

fn read_message(message: Value, phone_number_id: &PhoneNumberId) -> Option<Message> {
    let raw = serde_json::from_value::<RawMessage>(message).ok()?;
    if raw.id.is_empty() || raw.id.len() > MAX_MESSAGE_ID_LEN || raw.id.chars().any(char::is_control) {
        return None;
    }
    // Meta's types are short lowercase words (`text`, `button`, `request_welcome`); anything
    // else is kept as "unknown": the type is stored and logged, and PostgreSQL refuses a NUL.
    let kind = as_string(raw.kind.as_ref())
        .filter(|k| !k.is_empty() && k.len() <= 40 && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
        .unwrap_or("unknown")
        .to_owned();
    let text = if kind == "text" { raw.text.as_ref().and_then(|t| as_string(t.body.as_ref())).map(clip) } else { None };
    let button_text = if kind == "button" { raw.button.as_ref().and_then(|b| as_string(b.text.as_ref())).map(clip) } else { None };
    Some(Message {
        phone_number_id: phone_number_id.clone(),
        id: raw.id,
        from: sender(raw.from.as_ref()),
        sent_at: unix_seconds(raw.timestamp.as_ref()),
        kind,
        text,
        button_text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Meta's documented example of a text message (messages webhook reference).
    const TEXT: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","type":"text","text":{"body":"Does it come in another color?"}}]},"field":"messages"}]}]}"#;

    #[test]
    fn a_documented_text_message_is_read() {
        let n = parse(TEXT.as_bytes()).unwrap();
        assert_eq!(n.messages.len(), 1);
        let m = &n.messages[0];
        assert_eq!(m.phone_number_id.as_str(), "106540352242922");
        assert_eq!(m.from.as_ref().unwrap().as_str(), "+16505551234");
        assert_eq!(m.sent_at.unwrap().as_second(), 1_749_416_383);
        assert_eq!(m.kind, "text");
        assert_eq!(m.text.as_deref(), Some("Does it come in another color?"));
        assert!(n.skipped.is_empty());
    }

    #[test]
    fn a_message_type_that_is_not_a_word_is_kept_as_unknown() {
        for (kind, kept) in [("text", "text"), ("request_welcome", "request_welcome"), (r"te\u0000xt", "unknown"), ("Text", "unknown"), ("", "unknown"), ("x y", "unknown")] {
            let body = TEXT.replace(r#""type":"text""#, &format!(r#""type":"{kind}""#));
            let n = parse(body.as_bytes()).unwrap();
            assert_eq!(n.messages[0].kind, kept, "{kind}");
        }
        let long = TEXT.replace(r#""type":"text""#, &format!(r#""type":"{}""#, "a".repeat(41)));
        assert_eq!(parse(long.as_bytes()).unwrap().messages[0].kind, "unknown");
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_malformed() {
        for bad in [&b"{"[..], b"", b"not json", b"{\"object\": }"] {
            assert!(matches!(parse(bad), Err(MalformedBody::NotJson(_))), "{:?}", String::from_utf8_lossy(bad));
        }
        for bad in [&b"[]"[..], b"\"whatsapp_business_account\"", b"42", b"null"] {
            assert_eq!(parse(bad), Err(MalformedBody::NotAnObject));
        }
    }

    #[test]
    fn what_is_not_ours_is_skipped_not_refused() {
        let cases: [(&str, usize); 8] = [
            (r#"{"object":"page","entry":[]}"#, 0),
            (r#"{"object":"whatsapp_business_account","entry":"x"}"#, 0),
            (r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"account_update","value":{}}]}]}"#, 0),
            (r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"messages":[{"from":"1"}]}}]}]}"#, 0),
            (r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":"wamid.1"}]}}]}]}"#, 0),
            (r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"messages":[{"id":"wamid.1","type":"reaction","reaction":{"emoji":"x"},"future":[1,2]}]}}]}]}"#, 1),
            (r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"messages":[{"id":"wamid.1","type":"text","text":{"body":7}}]}}]}]}"#, 1),
            (r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"messages":[{"id":"wamid.1","from":"not digits","timestamp":"soon"}]}}]}]}"#, 1),
        ];
        for (body, messages) in cases {
            let n = parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(n.messages.len(), messages, "{body}");
        }
        let odd = parse(cases[7].0.as_bytes()).unwrap();
        assert_eq!((odd.messages[0].from.clone(), odd.messages[0].sent_at), (None, None));
    }

    #[test]
    fn statuses_are_counted_and_a_button_tap_keeps_its_text() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"statuses":[{"id":"wamid.2","status":"read"}],"messages":[{"id":"wamid.1","from":"393331234567","type":"button","button":{"text":"STOP","payload":"opt-out"}}]}}]}]}"#;
        let n = parse(body.as_bytes()).unwrap();
        assert_eq!(n.statuses, 1);
        assert_eq!(n.messages[0].button_text.as_deref(), Some("STOP"));
        assert_eq!(n.messages[0].text, None);
    }
}
