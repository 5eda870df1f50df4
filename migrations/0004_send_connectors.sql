-- Send connectors (PRODUCT §6; Exchange 2007 New-SendConnector). Lists are JSON:
-- address_spaces [{"pattern":"*","cost":1}], smart_hosts ["relay.example:587", "[::1]:25"].
-- The smart-host password is kept here because the server must present it; it is
-- never shown back by the CLI, API or console, nor logged.

CREATE TABLE send_connectors (
    id                    INTEGER PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE COLLATE NOCASE,
    enabled               INTEGER NOT NULL DEFAULT 1,
    usage                 TEXT NOT NULL,
    address_spaces        TEXT NOT NULL,
    dns_routing           INTEGER NOT NULL,
    smart_hosts           TEXT NOT NULL,
    port                  INTEGER NOT NULL,
    auth                  TEXT NOT NULL CHECK (auth IN ('none', 'basic', 'basic-require-tls', 'externally-secured')),
    username              TEXT,
    password              TEXT,
    require_tls           INTEGER NOT NULL DEFAULT 0,
    verify_certificate    INTEGER NOT NULL DEFAULT 0,
    fqdn                  TEXT,
    force_helo            INTEGER NOT NULL DEFAULT 0,
    max_message_size      INTEGER NOT NULL,
    max_connections       INTEGER NOT NULL,
    max_per_destination   INTEGER NOT NULL,
    connect_timeout       INTEGER NOT NULL,  -- seconds
    command_timeout       INTEGER NOT NULL,  -- seconds
    protocol_logging      TEXT NOT NULL DEFAULT 'none' CHECK (protocol_logging IN ('none', 'verbose')),
    created_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TRIGGER send_connectors_ins AFTER INSERT ON send_connectors BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER send_connectors_upd AFTER UPDATE ON send_connectors BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER send_connectors_del AFTER DELETE ON send_connectors BEGIN UPDATE org_version SET version = version + 1; END;
