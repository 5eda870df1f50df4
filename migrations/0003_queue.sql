-- The queue (PRODUCT §5) and message tracking (§8). The body of each message is a
-- spool file data/spool/msg/<id>; these rows are its envelope. A row exists only
-- once the spool file is durable, and both are written before the client hears 250.

CREATE TABLE messages (
    id               TEXT PRIMARY KEY,       -- queue id
    received_at      TEXT NOT NULL,
    sender           TEXT NOT NULL,          -- '' = null reverse path <>
    size             INTEGER NOT NULL,       -- spool file size, Received header included
    message_id       TEXT,                   -- the Message-ID header, if any
    subject          TEXT,
    ret              TEXT,                   -- DSN RET=FULL|HDRS
    envid            TEXT,                   -- DSN ENVID
    body_type        TEXT NOT NULL DEFAULT '7bit',
    smtputf8         INTEGER NOT NULL DEFAULT 0,
    source           TEXT NOT NULL,          -- receive connector name, 'pickup', 'dsn'
    client_ip        TEXT,
    client_helo      TEXT,
    auth_user        TEXT,
    -- 'submission': waiting for the categorizer; 'categorized': recipients routed.
    stage            TEXT NOT NULL DEFAULT 'submission' CHECK (stage IN ('submission', 'categorized')),
    suspended        INTEGER NOT NULL DEFAULT 0,
    poisoned         INTEGER NOT NULL DEFAULT 0,
    -- Bumped (and committed) before each processing run, reset after it: a message
    -- that keeps crashing or failing the queue manager goes to Poison (PRODUCT §5).
    processing_count INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,                   -- when the submission stage runs again after an error
    last_error       TEXT
);
CREATE INDEX messages_stage ON messages (stage);

CREATE TABLE recipients (
    message_id     TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    address        TEXT NOT NULL,
    orcpt          TEXT,                    -- DSN ORCPT (addr-type;address)
    notify         TEXT,                    -- DSN NOTIFY: NEVER or SUCCESS,FAILURE,DELAY
    -- pending (not categorized), queued (waiting for its next hop), delivered, relayed,
    -- failed, expanded (a group or contact replaced by other rows), duplicate
    status         TEXT NOT NULL DEFAULT 'pending',
    parent_seq     INTEGER,                 -- the recipient this one was expanded from
    next_hop       TEXT,                    -- 'mailbox', 'unreachable', or a remote hop key
    mailbox_id     INTEGER,
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,                   -- RFC 3339 UTC, sortable
    status_code    TEXT,                    -- enhanced status code of the last outcome
    diagnostic     TEXT,                    -- last error or reply text
    remote_mta     TEXT,
    delay_notified INTEGER NOT NULL DEFAULT 0,
    reported       INTEGER NOT NULL DEFAULT 0,  -- a final DSN (or none, by NOTIFY) is done
    PRIMARY KEY (message_id, seq)
) WITHOUT ROWID;
CREATE INDEX recipients_hop ON recipients (next_hop, status);

-- Queue-level admin state (Queue Viewer: suspend/resume, Retry after a connection failure).
CREATE TABLE queue_state (
    name        TEXT PRIMARY KEY,           -- 'submission', 'mailbox', 'unreachable', remote hop keys
    suspended   INTEGER NOT NULL DEFAULT 0,
    retry_at    TEXT,
    last_error  TEXT
);

-- Bumped by queue actions (CLI, API, console); the running server reloads its
-- schedule when it moves.
CREATE TABLE queue_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO queue_version (id, version) VALUES (1, 1);

CREATE TABLE tracking_events (
    id          INTEGER PRIMARY KEY,
    time        TEXT NOT NULL,
    event       TEXT NOT NULL,              -- RECEIVE, SUBMIT, DELIVER, ...
    queue_id    TEXT,
    message_id  TEXT,
    sender      TEXT,
    recipients  TEXT,                       -- comma-separated
    source      TEXT,                       -- connector
    client_ip   TEXT,
    next_hop    TEXT,
    remote      TEXT,
    status      TEXT,
    size        INTEGER
);
CREATE INDEX tracking_time ON tracking_events (time);
CREATE INDEX tracking_queue_id ON tracking_events (queue_id);
CREATE INDEX tracking_message_id ON tracking_events (message_id);
CREATE INDEX tracking_sender ON tracking_events (sender);
CREATE INDEX tracking_recipients ON tracking_events (recipients);
