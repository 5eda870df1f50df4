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
    queue            TEXT NOT NULL DEFAULT 'submission',
    state            TEXT NOT NULL DEFAULT 'ready',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    last_error       TEXT
);
CREATE INDEX messages_queue ON messages (queue, state);

CREATE TABLE recipients (
    message_id   TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    address      TEXT NOT NULL,
    orcpt        TEXT,                      -- DSN ORCPT (addr-type;address)
    notify       TEXT,                      -- DSN NOTIFY: NEVER or SUCCESS,FAILURE,DELAY
    status       TEXT NOT NULL DEFAULT 'pending',
    PRIMARY KEY (message_id, seq)
) WITHOUT ROWID;

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
