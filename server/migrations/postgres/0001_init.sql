-- Cornetta's first schema (PostgreSQL), mirroring migrations/sqlite/0001_init.sql with
-- PostgreSQL's own types. Never edit an applied migration: add a new one.
-- Times are TIMESTAMPTZ (microsecond precision, the precision events are written with);
-- lists are TEXT[]; notice and text hashes are lower-case hex; leaf hashes are 32 bytes.

CREATE TABLE sites (
    id              TEXT PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,
    business_name   TEXT NOT NULL CHECK (char_length(business_name) BETWEEN 1 AND 200),
    phones          TEXT[] NOT NULL,          -- E.164 numbers, the first is the default
    allowed_origins TEXT[] NOT NULL,
    default_lang    TEXT NOT NULL,
    widget          JSONB NOT NULL DEFAULT '{}',
    created_at      TIMESTAMPTZ NOT NULL
);

-- Where each site's log goes next. Appending locks the site's row (FOR UPDATE) in the
-- transaction that inserts the events, so that writers in several processes hand out one
-- gap-free `seq` sequence per site: a rolled-back transaction never used its numbers.
CREATE TABLE ledger_heads (
    site_id  TEXT PRIMARY KEY REFERENCES sites (id),
    next_seq BIGINT NOT NULL DEFAULT 0 CHECK (next_seq >= 0)
);

CREATE TABLE notices (
    id             TEXT PRIMARY KEY,
    site_id        TEXT NOT NULL REFERENCES sites (id),
    version        INTEGER NOT NULL CHECK (version >= 1),
    lang           TEXT NOT NULL,
    intro          TEXT NOT NULL,
    purposes       JSONB NOT NULL,            -- [{purpose, label}]
    privacy_url    TEXT,
    canonical_text TEXT NOT NULL,
    sha256         TEXT NOT NULL CHECK (length(sha256) = 64 AND sha256 ~ '^[0-9a-f]{64}$'),
    published_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (site_id, lang, version)
);

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'marketer')),
    site_id    TEXT REFERENCES sites (id),
    hash       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

-- A subject's data key encrypts the personal data of its events; erasure sets it to NULL.
CREATE TABLE subjects (
    id          TEXT PRIMARY KEY,
    site_id     TEXT NOT NULL REFERENCES sites (id),
    lookup      TEXT,                         -- HMAC-SHA256 of the E.164 number
    wrapped_key BYTEA,
    created_at  TIMESTAMPTZ NOT NULL,
    erased_at   TIMESTAMPTZ,
    UNIQUE (site_id, lookup)
);
CREATE INDEX subjects_by_lookup ON subjects (lookup);

CREATE TABLE consent_events (
    -- evt_<UUIDv7 hex>: time-ordered. Byte order ("C"), as in SQLite, so that `ORDER BY id`
    -- and the `id > cursor` pagination do not depend on the database's locale.
    id            TEXT COLLATE "C" PRIMARY KEY,
    site_id       TEXT NOT NULL REFERENCES sites (id),
    seq           BIGINT NOT NULL CHECK (seq >= 0),
    action        TEXT NOT NULL CHECK (action IN ('granted', 'confirmed', 'withdrawn', 'erased')),
    method        TEXT NOT NULL CHECK (method IN ('widget', 'form', 'qr_landing', 'api', 'whatsapp', 'admin')),
    reference     TEXT NOT NULL,
    subject_id    TEXT NOT NULL REFERENCES subjects (id),
    -- sorted, no duplicates
    purposes      TEXT[] NOT NULL CHECK (purposes <@ ARRAY['authentication', 'marketing', 'support', 'utility']),
    notice_id     TEXT REFERENCES notices (id),
    notice_sha256 TEXT,
    personal      BYTEA,                      -- encrypted with the subject's key
    details       TEXT NOT NULL,              -- canonical JSON, no personal data
    actor         TEXT NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL,
    leaf_hash     BYTEA NOT NULL CHECK (octet_length(leaf_hash) = 32),
    UNIQUE (site_id, seq)
);
CREATE INDEX consent_events_by_reference ON consent_events (site_id, reference);
CREATE INDEX consent_events_by_subject ON consent_events (subject_id);
CREATE INDEX consent_events_by_time ON consent_events (recorded_at);
CREATE UNIQUE INDEX one_grant_per_reference ON consent_events (site_id, reference) WHERE action = 'granted';

-- Evidence is append-only and published notices are immutable: refuse UPDATE, DELETE and
-- TRUNCATE on both, whoever asks (the message names the rule that was broken).
CREATE FUNCTION cornetta_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER notices_are_immutable BEFORE UPDATE OR DELETE ON notices
    FOR EACH ROW EXECUTE FUNCTION cornetta_refuse_change('notices are immutable; publish a new version');
CREATE TRIGGER notices_are_kept BEFORE TRUNCATE ON notices
    FOR EACH STATEMENT EXECUTE FUNCTION cornetta_refuse_change('notices are immutable; publish a new version');
CREATE TRIGGER consent_events_are_append_only BEFORE UPDATE OR DELETE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION cornetta_refuse_change('consent events are append-only');
CREATE TRIGGER consent_events_are_kept BEFORE TRUNCATE ON consent_events
    FOR EACH STATEMENT EXECUTE FUNCTION cornetta_refuse_change('consent events are append-only');
