-- Receive connectors (PRODUCT §4). Lists are JSON arrays; the three defaults are
-- inserted at first start by app.rs (their bindings come from [smtp] in the config).

CREATE TABLE receive_connectors (
    id                     INTEGER PRIMARY KEY,
    name                   TEXT NOT NULL UNIQUE COLLATE NOCASE,
    enabled                INTEGER NOT NULL DEFAULT 1,
    usage                  TEXT NOT NULL,
    bindings               TEXT NOT NULL,   -- ["0.0.0.0:25", "[::]:25"]
    remote_ranges          TEXT NOT NULL,   -- ["0.0.0.0/0", "::/0"] or ranges "a-b"
    fqdn                   TEXT,            -- NULL = [hostname] of the config
    banner                 TEXT,
    auth_mechanisms        TEXT NOT NULL,   -- ["tls","basic","basic-require-tls","externally-secured"]
    permission_groups      TEXT NOT NULL,   -- ["anonymous","users","partners","servers"]
    anonymous_relay        INTEGER NOT NULL DEFAULT 0,
    require_tls            INTEGER NOT NULL DEFAULT 0,
    implicit_tls           INTEGER NOT NULL DEFAULT 0,
    max_message_size       INTEGER NOT NULL,
    max_recipients         INTEGER NOT NULL,
    max_connections        INTEGER NOT NULL,
    max_connections_per_ip INTEGER NOT NULL,
    connection_timeout     INTEGER NOT NULL,  -- seconds
    command_timeout        INTEGER NOT NULL,  -- seconds
    max_bad_commands       INTEGER NOT NULL,
    max_auth_failures      INTEGER NOT NULL,
    protocol_logging       TEXT NOT NULL DEFAULT 'none' CHECK (protocol_logging IN ('none', 'verbose')),
    created_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TRIGGER receive_connectors_ins AFTER INSERT ON receive_connectors BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER receive_connectors_upd AFTER UPDATE ON receive_connectors BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER receive_connectors_del AFTER DELETE ON receive_connectors BEGIN UPDATE org_version SET version = version + 1; END;

-- Server properties (retry policy, NDR copy address, tracking retention) live in
-- settings; a change reaches the running server like any organization change.
CREATE TRIGGER settings_ins AFTER INSERT ON settings BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER settings_upd AFTER UPDATE ON settings BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER settings_del AFTER DELETE ON settings BEGIN UPDATE org_version SET version = version + 1; END;
