-- Cornetta's first schema (SQLite). Never edit an applied migration: add a new one.
-- Times are microseconds since the Unix epoch (UTC); hashes are lower-case hex.

CREATE TABLE sites (
    id              TEXT PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,
    business_name   TEXT NOT NULL CHECK (length(business_name) BETWEEN 1 AND 200),
    phones          TEXT NOT NULL,            -- JSON array of E.164 numbers
    allowed_origins TEXT NOT NULL,            -- JSON array of origins
    default_lang    TEXT NOT NULL,
    widget          TEXT NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL
);

CREATE TABLE notices (
    id             TEXT PRIMARY KEY,
    site_id        TEXT NOT NULL REFERENCES sites (id),
    version        INTEGER NOT NULL CHECK (version >= 1),
    lang           TEXT NOT NULL,
    intro          TEXT NOT NULL,
    purposes       TEXT NOT NULL,             -- JSON array of {purpose, label}
    privacy_url    TEXT,
    canonical_text TEXT NOT NULL,
    sha256         TEXT NOT NULL CHECK (length(sha256) = 64),
    published_at   INTEGER NOT NULL,
    UNIQUE (site_id, lang, version)
);

-- Published notices are immutable: a change is a new version.
CREATE TRIGGER notices_are_immutable BEFORE UPDATE ON notices
BEGIN SELECT RAISE(ABORT, 'notices are immutable; publish a new version'); END;
CREATE TRIGGER notices_are_kept BEFORE DELETE ON notices
BEGIN SELECT RAISE(ABORT, 'notices are immutable; publish a new version'); END;

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'marketer')),
    site_id    TEXT REFERENCES sites (id),
    hash       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- A subject's data key encrypts the personal data of its events; erasure sets it to NULL.
CREATE TABLE subjects (
    id          TEXT PRIMARY KEY,
    site_id     TEXT NOT NULL REFERENCES sites (id),
    lookup      TEXT,                         -- HMAC-SHA256 of the E.164 number
    wrapped_key BLOB,
    created_at  INTEGER NOT NULL,
    erased_at   INTEGER,
    UNIQUE (site_id, lookup)
);
CREATE INDEX subjects_by_lookup ON subjects (lookup);

CREATE TABLE consent_events (
    id            TEXT PRIMARY KEY,           -- evt_<UUIDv7>, time-ordered
    site_id       TEXT NOT NULL REFERENCES sites (id),
    seq           INTEGER NOT NULL CHECK (seq >= 0),
    action        TEXT NOT NULL CHECK (action IN ('granted', 'confirmed', 'withdrawn', 'erased')),
    method        TEXT NOT NULL CHECK (method IN ('widget', 'form', 'qr_landing', 'api', 'whatsapp', 'admin')),
    reference     TEXT NOT NULL,
    subject_id    TEXT NOT NULL REFERENCES subjects (id),
    purposes      TEXT NOT NULL,              -- comma-separated, sorted
    notice_id     TEXT REFERENCES notices (id),
    notice_sha256 TEXT,
    personal      BLOB,                       -- encrypted with the subject's key
    details       TEXT NOT NULL,              -- canonical JSON, no personal data
    actor         TEXT NOT NULL,
    recorded_at   INTEGER NOT NULL,
    leaf_hash     TEXT NOT NULL CHECK (length(leaf_hash) = 64),
    UNIQUE (site_id, seq)
);
CREATE INDEX consent_events_by_reference ON consent_events (site_id, reference);
CREATE INDEX consent_events_by_subject ON consent_events (subject_id);
CREATE INDEX consent_events_by_time ON consent_events (recorded_at);
CREATE UNIQUE INDEX one_grant_per_reference ON consent_events (site_id, reference) WHERE action = 'granted';

-- Consent events are evidence: append-only.
CREATE TRIGGER consent_events_are_append_only BEFORE UPDATE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only'); END;
CREATE TRIGGER consent_events_are_kept BEFORE DELETE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only'); END;
