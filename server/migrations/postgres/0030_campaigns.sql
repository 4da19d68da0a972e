-- QR studio (PostgreSQL): campaigns with their short codes, daily scan counters per device
-- class (no address, no identifier of the scanner), and console sign-in sessions.
-- Times are TIMESTAMPTZ, as in the rest of the PostgreSQL schema.

CREATE TABLE campaigns (
    id         TEXT PRIMARY KEY,               -- cmp_<UUIDv7>, time-ordered
    site_id    TEXT NOT NULL REFERENCES sites (id),
    code       TEXT UNIQUE,                    -- short code; NULL for a static campaign
    name       TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    phone      TEXT NOT NULL,                  -- E.164
    text       TEXT,                           -- prefilled message, may hold {ref}
    source     TEXT,
    medium     TEXT,
    expires_at TIMESTAMPTZ,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX campaigns_by_site ON campaigns (site_id, id);

CREATE TABLE campaign_scans (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    day         TEXT NOT NULL CHECK (length(day) = 10),   -- YYYY-MM-DD, UTC
    device      TEXT NOT NULL CHECK (device IN ('ios', 'android', 'desktop', 'other', 'bot')),
    scans       BIGINT NOT NULL CHECK (scans >= 0),
    PRIMARY KEY (campaign_id, day, device)
);

-- Only hashes of the session secret and of the token it was opened with are kept.
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
