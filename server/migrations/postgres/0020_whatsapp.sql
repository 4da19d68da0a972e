-- The WhatsApp Cloud API webhook (PostgreSQL), mirroring migrations/sqlite/0020_whatsapp.sql
-- with PostgreSQL's own types. Never edit an applied migration: add a new one.

-- A Meta app: its webhook verify token (only its SHA-256 is kept: it is only ever compared)
-- and its app secret, which signs every notification (X-Hub-Signature-256). The secret is
-- needed in the clear to check signatures, so it is stored encrypted: a random data key
-- wrapped with the master key (bound to the app id) and the secret sealed with that key.
CREATE TABLE whatsapp_apps (
    id                  TEXT PRIMARY KEY,          -- waa_<UUIDv7>
    name                TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    verify_token_sha256 TEXT NOT NULL CHECK (verify_token_sha256 ~ '^[0-9a-f]{64}$'),
    secret_key_wrapped  BYTEA NOT NULL,
    secret_sealed       BYTEA NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL
);

-- A business phone number of a site, as Meta names it in notifications
-- (value.metadata.phone_number_id), and the app whose secret must sign its notifications.
CREATE TABLE whatsapp_numbers (
    phone_number_id TEXT PRIMARY KEY CHECK (phone_number_id ~ '^[0-9]{1,32}$'),
    site_id         TEXT NOT NULL REFERENCES sites (id),
    phone           TEXT NOT NULL,             -- the business's E.164 number (not personal data)
    app_id          TEXT NOT NULL REFERENCES whatsapp_apps (id),
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX whatsapp_numbers_by_site ON whatsapp_numbers (site_id);

-- Per-site opt-out settings; no row means the built-in keywords and no reply.
CREATE TABLE whatsapp_site_settings (
    site_id    TEXT PRIMARY KEY REFERENCES sites (id),
    keywords   TEXT[],                         -- normalised keywords; NULL: the built-in list
    reply      TEXT,                           -- opt-out confirmation text; NULL: none
    updated_at TIMESTAMPTZ NOT NULL
);

-- Every inbound message of a known number, recorded once: Meta retries deliveries, so the
-- message id is the idempotency key. It is kept as a keyed hash only, because a wamid
-- encodes the sender's number. `lookup` (HMAC of the sender's E.164 number, as in
-- subjects) and `sent_at` give the 24-hour customer-service window. Written in the same
-- transaction as the consent events the message causes.
CREATE TABLE whatsapp_messages (
    site_id         TEXT NOT NULL REFERENCES sites (id),
    message_key     TEXT NOT NULL CHECK (message_key ~ '^[0-9a-f]{64}$'),
    phone_number_id TEXT NOT NULL,
    lookup          TEXT,                      -- NULL when Meta withheld the number
    kind            TEXT NOT NULL,             -- Meta's message type (text, image, ...)
    outcome         TEXT NOT NULL CHECK (outcome IN ('confirmed', 'already_confirmed', 'reference_taken',
                        'unknown_reference', 'withdrawn', 'nothing_to_withdraw', 'none', 'no_number')),
    sent_at         TIMESTAMPTZ NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (site_id, message_key)
);
CREATE INDEX whatsapp_messages_by_person ON whatsapp_messages (site_id, lookup, sent_at);
