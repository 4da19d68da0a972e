//! What every request handler can reach: the store, the keys, the settings and the widget's
//! built assets. Built once at start-up; cheap to clone.

use std::sync::Arc;

use axum::extract::FromRef;
use cornetta_shared::Region;

use crate::assets::Assets;
use crate::keys::Keyring;
use crate::ledger::Ledger;
use crate::limits::RateLimits;
use crate::store::DynStore;

/// Settings that handlers read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The region national phone numbers are read in when a request names none.
    pub default_region: Option<Region>,
    /// The public base URL of this server (`http://127.0.0.1:8080`), for links it hands out.
    pub public_url: String,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// The jurisdiction consent receipts name (Kantara `jurisdiction`).
    pub jurisdiction: String,
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: DynStore,
    pub keys: Arc<Keyring>,
    pub settings: Arc<Settings>,
    pub assets: Arc<Assets>,
    pub limits: Arc<RateLimits>,
    /// Each site's Merkle tree and checkpoints.
    pub ledger: Arc<Ledger>,
}

impl FromRef<AppState> for DynStore {
    fn from_ref(state: &AppState) -> Self {
        state.store.clone()
    }
}

impl FromRef<AppState> for Arc<Settings> {
    fn from_ref(state: &AppState) -> Self {
        state.settings.clone()
    }
}
