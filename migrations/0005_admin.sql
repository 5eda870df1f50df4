-- The admin surface (PRODUCT §7): the audit log of every change made through the
-- console or the API, and API tokens for automation (only a SHA-256 of each token
-- is kept; the token itself is shown once, when it is made).

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    actor   TEXT NOT NULL,             -- console user, or "token:NAME"
    action  TEXT NOT NULL,             -- e.g. "mailbox.new", "queue.suspend"
    object  TEXT NOT NULL,             -- what it was done to
    detail  TEXT                       -- a short description (never a secret)
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    token_sha256 TEXT NOT NULL UNIQUE,  -- hex
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    last_used_at TEXT
);
