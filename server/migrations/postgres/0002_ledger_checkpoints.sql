-- Signed checkpoints of each site's log (C2SP tlog-checkpoint in a signed note), made on a
-- schedule and on demand. Append-only, like the events they vouch for.

CREATE TABLE ledger_checkpoints (
    id        TEXT COLLATE "C" PRIMARY KEY,   -- ckp_<UUIDv7>, time-ordered
    site_id   TEXT NOT NULL REFERENCES sites (id),
    tree_size BIGINT NOT NULL CHECK (tree_size >= 0),
    root_hash BYTEA NOT NULL CHECK (octet_length(root_hash) = 32),
    signed_at TIMESTAMPTZ NOT NULL,
    note      TEXT NOT NULL                   -- the whole signed note
);
CREATE INDEX ledger_checkpoints_by_site ON ledger_checkpoints (site_id, id);

CREATE TRIGGER ledger_checkpoints_are_append_only BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION cornetta_refuse_change('checkpoints are append-only');
CREATE TRIGGER ledger_checkpoints_are_kept BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION cornetta_refuse_change('checkpoints are append-only');
