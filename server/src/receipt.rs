//! Consent receipts: one event as a self-contained JSON document a person or auditor can
//! keep, with the fields of a Kantara Consent Receipt (v1.1) / ISO/IEC TS 27560:2023
//! consent record that apply, the event exactly as stored, its RFC 9162 inclusion proof and
//! a signed checkpoint, so that it verifies offline with the ledger's public key alone.
//!
//! What the proof covers: the stored event (every field, personal data in its encrypted
//! form), the notice text through its SHA-256, and through the checkpoint the whole log up
//! to its tree size. The decrypted personal data shown (`pii_principal_id`, evidence) is
//! what the server read with the subject's key; it is not covered by the proof.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::ledger::LeafFields;
use crate::ledger::checkpoint::{Checkpoint, origin_for};
use crate::ledger::merkle::{self, Hash};

/// The format of this document.
pub const RECEIPT_FORMAT: &str = "cornetta-consent-receipt/1";

/// A consent receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub receipt_format: String,
    /// The specifications whose fields it carries.
    pub follows: Vec<String>,
    // --- Kantara CR v1.1 / ISO/IEC TS 27560 fields ---
    /// Kantara `consentReceiptID`: the event id.
    pub consent_receipt_id: String,
    /// Kantara `jurisdiction`.
    pub jurisdiction: String,
    /// Kantara `consentTimestamp` (RFC 3339, the server's time of the event).
    pub consent_timestamp: String,
    /// Kantara `collectionMethod`: widget, form, qr_landing, api, whatsapp, admin.
    pub collection_method: String,
    /// What the event records: granted, confirmed, withdrawn, erased.
    pub action: String,
    /// Kantara `language` of the notice.
    pub language: Option<String>,
    /// Kantara `piiPrincipalId`: the person's number when known and not erased.
    pub pii_principal_id: Option<String>,
    /// The consent's short reference (what the person was shown and sent on WhatsApp).
    pub reference: String,
    /// Kantara `piiControllers`.
    pub pii_controllers: Vec<Controller>,
    /// Kantara `policyUrl`.
    pub policy_url: Option<String>,
    /// Kantara `services` with their `purposes`.
    pub services: Vec<Service>,
    /// Kantara `sensitive` and `spiCat`: no special categories (Art. 9) are processed.
    pub sensitive: bool,
    pub spi_cat: Vec<String>,
    /// ISO/IEC TS 27560 notice: the exact text shown (EDPB 05/2020 ¶108) and its hash.
    pub notice: Option<NoticeCopy>,
    /// ISO/IEC TS 27560 withdrawal method (GDPR Art. 7(3)).
    pub withdrawal: Withdrawal,
    /// Evidence the server decrypted (not covered by the proof).
    pub evidence: EvidenceCopy,
    // --- The proof ---
    /// The site's public key: the log is `cornetta/<site>`.
    pub site: String,
    /// The event as stored; its leaf hash is recomputed from these fields.
    pub event: StoredFields,
    pub inclusion_proof: InclusionProof,
    /// A C2SP signed checkpoint of the site's log that includes the event.
    pub checkpoint: String,
    /// The key the checkpoint is signed with, for reference; verify with a key you obtained
    /// yourself (`GET /v1/ledger/public-key`).
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Controller {
    pub pii_controller: String,
    /// The business's WhatsApp number(s).
    pub contact: Vec<String>,
    pub on_behalf: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub service: String,
    pub purposes: Vec<ServicePurpose>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePurpose {
    /// The label the person ticked.
    pub purpose: String,
    /// Kantara `purposeCategory`: the WhatsApp message category.
    pub purpose_category: Vec<String>,
    /// Kantara `consentType`: always EXPLICIT (an unticked box the person ticked).
    pub consent_type: String,
    pub pii_category: Vec<String>,
    pub primary_purpose: bool,
    pub termination: String,
    pub third_party_disclosure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeCopy {
    pub id: String,
    pub version: u32,
    pub lang: String,
    pub text: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    pub method: String,
    pub endpoint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceCopy {
    pub page_url: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Every column of the stored event, as stored (personal data encrypted, base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredFields {
    pub id: String,
    pub site_id: String,
    pub seq: u64,
    pub action: String,
    pub method: String,
    pub reference: String,
    pub subject_id: String,
    pub purposes: String,
    pub notice_id: Option<String>,
    pub notice_sha256: Option<String>,
    pub personal: Option<String>,
    pub details: String,
    pub actor: String,
    pub recorded_at_micros: i64,
    pub leaf_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    pub root_hash: String,
    /// Hex, RFC 9162 §2.1.3 order (from the leaf up).
    pub hashes: Vec<String>,
}

/// What a verified receipt says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub event: String,
    pub site: String,
    pub leaf_index: u64,
    pub checkpoint: Checkpoint,
}

/// Why a receipt does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReceiptError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, ReceiptError> {
    Err(ReceiptError(message.into()))
}

fn hash_hex(what: &str, text: &str) -> Result<Hash, ReceiptError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).map_err(|_| ReceiptError(format!("{what} is not 64 hex digits")))?;
    Ok(out)
}

impl StoredFields {
    fn leaf_data(&self) -> Result<Vec<u8>, ReceiptError> {
        let personal = match &self.personal {
            Some(p) => Some(B64.decode(p).map_err(|_| ReceiptError("event.personal is not base64".into()))?),
            None => None,
        };
        Ok(LeafFields {
            id: &self.id,
            site_id: &self.site_id,
            seq: self.seq,
            action: &self.action,
            method: &self.method,
            reference: &self.reference,
            subject_id: &self.subject_id,
            purposes: &self.purposes,
            notice_id: self.notice_id.as_deref(),
            notice_sha256: self.notice_sha256.as_deref(),
            personal: personal.as_deref(),
            details: &self.details,
            actor: &self.actor,
            recorded_at_micros: self.recorded_at_micros,
        }
        .encode())
    }
}

impl Receipt {
    /// Checks everything a receipt claims, offline: the stored event gives its leaf hash,
    /// the readable fields say what the stored event says, the notice text has its hash,
    /// the inclusion proof leads to the checkpoint's root, and the checkpoint is signed by
    /// `key` for this site's log.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Verified, ReceiptError> {
        if self.receipt_format != RECEIPT_FORMAT {
            return fail(format!("receipt_format is {:?}; this tool reads {RECEIPT_FORMAT}", self.receipt_format));
        }
        let e = &self.event;
        // 1. The readable part says what the stored event says.
        let checks: [(&str, bool); 6] = [
            ("consent_receipt_id", self.consent_receipt_id == e.id),
            ("action", self.action == e.action),
            ("collection_method", self.collection_method == e.method),
            ("reference", self.reference.replace('-', "") == e.reference),
            ("consent_timestamp", jiff::Timestamp::from_microsecond(e.recorded_at_micros).is_ok_and(|t| self.consent_timestamp.parse::<jiff::Timestamp>().is_ok_and(|c| c == t))),
            ("services.purposes", {
                let mut listed: Vec<&str> = self.services.iter().flat_map(|s| &s.purposes).flat_map(|p| p.purpose_category.iter().map(String::as_str)).collect();
                listed.sort_unstable();
                let stored: Vec<&str> = e.purposes.split(',').filter(|p| !p.is_empty()).collect();
                listed == stored
            }),
        ];
        if let Some((field, _)) = checks.iter().find(|(_, ok)| !ok) {
            return fail(format!("the receipt's {field} does not match the stored event it proves: the receipt was modified"));
        }
        match (&self.notice, &e.notice_id) {
            (Some(n), Some(id)) => {
                if &n.id != id || Some(&n.sha256) != e.notice_sha256.as_ref() {
                    return fail("the notice named by the receipt is not the one of the stored event: the receipt was modified");
                }
                if crate::notice::sha256_hex(&n.text) != n.sha256 {
                    return fail("the notice text does not have the SHA-256 the event recorded: the text was modified");
                }
            }
            (None, None) => {}
            _ => return fail("the receipt's notice does not match the stored event: the receipt was modified"),
        }
        // 2. The stored event gives its leaf hash.
        let data = e.leaf_data()?;
        let leaf = merkle::leaf_hash(&data);
        if hex::encode(leaf) != e.leaf_hash {
            return fail(format!("the stored fields of event {} do not give its leaf hash: the event was modified", e.id));
        }
        // 3. The checkpoint is signed for this site's log.
        let checkpoint = Checkpoint::open(&self.checkpoint, key).map_err(|err| ReceiptError(format!("checkpoint: {err}")))?;
        if checkpoint.origin != origin_for(&self.site) {
            return fail(format!("the checkpoint is for log {:?}, not site {}", checkpoint.origin, self.site));
        }
        // 4. The proof leads from the leaf to the signed root.
        let p = &self.inclusion_proof;
        if p.leaf_index != e.seq {
            return fail("the proof is for another position than the event's seq");
        }
        if p.tree_size != checkpoint.size || hash_hex("inclusion_proof.root_hash", &p.root_hash)? != checkpoint.root {
            return fail("the proof is for another tree than the signed checkpoint");
        }
        let hashes = p.hashes.iter().map(|h| hash_hex("a proof hash", h)).collect::<Result<Vec<_>, _>>()?;
        merkle::verify_inclusion(&data, p.leaf_index, p.tree_size, &checkpoint.root, &hashes)
            .map_err(|err| ReceiptError(format!("the inclusion proof does not lead to the signed root ({err})")))?;
        Ok(Verified { event: e.id.clone(), site: self.site.clone(), leaf_index: p.leaf_index, checkpoint })
    }
}

/// Builds the receipt of a stored event: its checkpoint is the newest one if it includes
/// the event, else one signed now.
pub async fn build(state: &crate::state::AppState, event: &crate::store::StoredEvent) -> Result<Receipt, crate::error::ApiError> {
    use crate::error::ApiError;
    let store = &state.store;
    let site = store.site_by_id(&event.site_id).await?.ok_or_else(|| ApiError::NotFound("the event's site no longer exists".into()))?;
    let notice = match &event.notice_id {
        Some(id) => store.notice(id).await?,
        None => None,
    };
    let view = crate::consents::Viewer::default().view(store, &state.keys, event).await?;
    let checkpoint = state.ledger.checkpoint_covering(store, &state.keys, &site, event.seq).await?;
    let proof = state.ledger.inclusion(store, &site.id, event.seq, checkpoint.tree_size).await?;
    if proof.root != checkpoint.root_hash {
        return Err(ApiError::internal(anyhow::anyhow!("the log of site {} no longer has the root its checkpoint {} signed", site.key, checkpoint.id)));
    }
    let label = |p: cornetta_shared::Purpose| {
        notice.as_ref().and_then(|n| n.purposes.iter().find(|np| np.purpose == p)).map_or_else(|| p.as_str().to_owned(), |np| np.label.clone())
    };
    let purposes = event
        .purposes
        .iter()
        .map(|p| ServicePurpose {
            purpose: label(*p),
            purpose_category: vec![p.as_str().to_owned()],
            consent_type: "EXPLICIT".into(),
            pii_category: vec!["WhatsApp phone number".into(), "WhatsApp messages".into()],
            primary_purpose: true,
            termination: "until withdrawn".into(),
            third_party_disclosure: false,
        })
        .collect();
    Ok(Receipt {
        receipt_format: RECEIPT_FORMAT.into(),
        follows: vec!["Kantara Initiative Consent Receipt Specification v1.1".into(), "ISO/IEC TS 27560:2023".into()],
        consent_receipt_id: event.id.to_string(),
        jurisdiction: state.settings.jurisdiction.clone(),
        consent_timestamp: event.recorded_at.to_string(),
        collection_method: event.method.as_str().into(),
        action: event.action.as_str().into(),
        language: notice.as_ref().map(|n| n.lang.to_string()),
        pii_principal_id: view.phone.clone(),
        reference: event.reference.to_string(),
        pii_controllers: vec![Controller {
            pii_controller: site.business_name.clone(),
            contact: site.phones.iter().map(|p| p.to_string()).collect(),
            on_behalf: false,
        }],
        policy_url: notice.as_ref().and_then(|n| n.privacy_url.clone()),
        services: vec![Service { service: format!("WhatsApp messages from {}", site.business_name), purposes }],
        sensitive: false,
        spi_cat: Vec::new(),
        notice: notice.as_ref().map(|n| NoticeCopy {
            id: n.id.to_string(),
            version: n.version,
            lang: n.lang.to_string(),
            text: n.canonical_text.clone(),
            sha256: n.sha256.clone(),
        }),
        withdrawal: Withdrawal {
            method: format!(
                "press withdraw in the chat widget on the site, open {}/withdraw?site={}&ref={}{} (the withdrawal page, in the notice's language), \
                 send STOP to {} on WhatsApp, or ask the business; each is recorded as a withdrawal",
                state.settings.public_url,
                site.key,
                event.reference,
                notice.as_ref().map(|n| format!("&lang={}", n.lang)).unwrap_or_default(),
                site.business_name
            ),
            endpoint: format!("POST {}/v1/consents/{}/withdraw", state.settings.public_url, event.reference),
        },
        evidence: EvidenceCopy { page_url: view.page_url, ip: view.ip, user_agent: view.user_agent },
        site: site.key.to_string(),
        event: StoredFields {
            id: event.id.to_string(),
            site_id: event.site_id.clone(),
            seq: event.seq,
            action: event.action.as_str().into(),
            method: event.method.as_str().into(),
            reference: event.reference.as_str().into(),
            subject_id: event.subject_id.clone(),
            purposes: crate::ledger::purposes_column(&event.purposes),
            notice_id: event.notice_id.as_ref().map(|n| n.to_string()),
            notice_sha256: event.notice_sha256.clone(),
            personal: event.personal.as_ref().map(|p| B64.encode(p)),
            details: event.details.clone(),
            actor: event.actor.clone(),
            recorded_at_micros: event.recorded_at.as_microsecond(),
            leaf_hash: hex::encode(event.leaf_hash),
        },
        inclusion_proof: InclusionProof {
            leaf_index: event.seq,
            tree_size: proof.tree_size,
            root_hash: hex::encode(proof.root),
            hashes: proof.hashes.iter().map(hex::encode).collect(),
        },
        checkpoint: checkpoint.note,
        public_key: crate::ledger::checkpoint::verifier_key(&state.keys.verifying_key()),
    })
}
