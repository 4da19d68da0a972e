-- Signed checkpoints of each site's log (C2SP tlog-checkpoint in a signed note), made on a
-- schedule and on demand. Append-only, like the events they vouch for.

CREATE TABLE ledger_checkpoints (
    id        TEXT PRIMARY KEY,               -- ckp_<UUIDv7>, time-ordered
    site_id   TEXT NOT NULL REFERENCES sites (id),
    tree_size INTEGER NOT NULL CHECK (tree_size >= 0),
    root_hash TEXT NOT NULL CHECK (length(root_hash) = 64),
    signed_at INTEGER NOT NULL,               -- microseconds since the Unix epoch
    note      TEXT NOT NULL                   -- the whole signed note
);
CREATE INDEX ledger_checkpoints_by_site ON ledger_checkpoints (site_id, id);

CREATE TRIGGER ledger_checkpoints_are_append_only BEFORE UPDATE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER ledger_checkpoints_are_kept BEFORE DELETE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
