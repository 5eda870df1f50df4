-- The organization store (PRODUCT §1–§3): accepted domains, recipients and their
-- addresses, address policies, remote domains, console users.
--
-- Every organization table bumps org_version through triggers, so a running server
-- sees changes made by the CLI (another process) by polling one row.

CREATE TABLE org_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO org_version (id, version) VALUES (1, 1);

CREATE TABLE accepted_domains (
    id          INTEGER PRIMARY KEY,
    -- `example.com` or `*.example.com` (the domain and its subdomains), lower-case
    name        TEXT NOT NULL UNIQUE,
    domain_type TEXT NOT NULL CHECK (domain_type IN ('authoritative', 'internal-relay', 'external-relay')),
    is_default  INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
-- At most one default domain.
CREATE UNIQUE INDEX accepted_domains_one_default ON accepted_domains (is_default) WHERE is_default = 1;

CREATE TABLE mailboxes (
    id              INTEGER PRIMARY KEY,
    display_name    TEXT NOT NULL,
    given_name      TEXT NOT NULL DEFAULT '',
    surname         TEXT NOT NULL DEFAULT '',
    initials        TEXT NOT NULL DEFAULT '',
    alias           TEXT NOT NULL,
    password_hash   TEXT,               -- argon2id PHC string; NULL = may not authenticate
    quota_mb        INTEGER,            -- NULL = unlimited
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    -- data/mailboxes/<folder>/Maildir; fixed at creation so renaming the primary
    -- address never strands mail in an old folder.
    folder          TEXT NOT NULL UNIQUE,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TABLE distribution_groups (
    id                       INTEGER PRIMARY KEY,
    display_name             TEXT NOT NULL,
    only_authenticated       INTEGER NOT NULL DEFAULT 0 CHECK (only_authenticated IN (0, 1)),
    created_at               TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TABLE mail_contacts (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name     TEXT NOT NULL,
    external_address TEXT NOT NULL,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- Every SMTP address of the organization, whatever owns it: one table makes them
-- unique across mailboxes, groups and contacts.
CREATE TABLE addresses (
    address_key TEXT PRIMARY KEY,        -- case-folded, see EmailAddress::key
    address     TEXT NOT NULL,           -- as typed
    is_primary  INTEGER NOT NULL DEFAULT 0 CHECK (is_primary IN (0, 1)),
    mailbox_id  INTEGER REFERENCES mailboxes (id) ON DELETE CASCADE,
    group_id    INTEGER REFERENCES distribution_groups (id) ON DELETE CASCADE,
    contact_id  INTEGER REFERENCES mail_contacts (id) ON DELETE CASCADE,
    CHECK ((mailbox_id IS NOT NULL) + (group_id IS NOT NULL) + (contact_id IS NOT NULL) = 1)
) WITHOUT ROWID;
CREATE INDEX addresses_mailbox ON addresses (mailbox_id);
CREATE INDEX addresses_group ON addresses (group_id);
CREATE INDEX addresses_contact ON addresses (contact_id);

CREATE TABLE group_members (
    group_id          INTEGER NOT NULL REFERENCES distribution_groups (id) ON DELETE CASCADE,
    mailbox_id        INTEGER REFERENCES mailboxes (id) ON DELETE CASCADE,
    contact_id        INTEGER REFERENCES mail_contacts (id) ON DELETE CASCADE,
    member_group_id   INTEGER REFERENCES distribution_groups (id) ON DELETE CASCADE,
    CHECK ((mailbox_id IS NOT NULL) + (contact_id IS NOT NULL) + (member_group_id IS NOT NULL) = 1)
);
CREATE UNIQUE INDEX group_members_unique ON group_members
    (group_id, IFNULL(mailbox_id, 0), IFNULL(contact_id, 0), IFNULL(member_group_id, 0));

-- Submission restrictions of a group: senders it accepts from or rejects.
CREATE TABLE group_sender_lists (
    group_id    INTEGER NOT NULL REFERENCES distribution_groups (id) ON DELETE CASCADE,
    list        TEXT NOT NULL CHECK (list IN ('accept', 'reject')),
    sender_key  TEXT NOT NULL,
    sender      TEXT NOT NULL,
    PRIMARY KEY (group_id, list, sender_key)
);

CREATE TABLE address_policies (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    priority      INTEGER NOT NULL,      -- 1 is the highest
    filter_domain TEXT,                  -- NULL = all recipients; else primary address domain
    templates     TEXT NOT NULL,         -- JSON array; the first is the primary template
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TABLE remote_domains (
    id                     INTEGER PRIMARY KEY,
    name                   TEXT NOT NULL UNIQUE COLLATE NOCASE,
    domain                 TEXT NOT NULL UNIQUE,   -- `*`, `example.com` or `*.example.com`
    allow_out_of_office    INTEGER NOT NULL DEFAULT 1,
    allow_auto_reply       INTEGER NOT NULL DEFAULT 1,
    allow_auto_forward     INTEGER NOT NULL DEFAULT 1,
    allow_delivery_reports INTEGER NOT NULL DEFAULT 1,
    allow_ndr              INTEGER NOT NULL DEFAULT 1,
    line_length            INTEGER,                -- NULL = no wrapping
    charset                TEXT,                   -- NULL = leave as is
    created_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
-- Exchange creates a "Default" remote domain for `*`; so do we.
INSERT INTO remote_domains (name, domain) VALUES ('Default', '*');

CREATE TABLE console_users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TRIGGER accepted_domains_ins AFTER INSERT ON accepted_domains BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER accepted_domains_upd AFTER UPDATE ON accepted_domains BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER accepted_domains_del AFTER DELETE ON accepted_domains BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER mailboxes_ins AFTER INSERT ON mailboxes BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER mailboxes_upd AFTER UPDATE ON mailboxes BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER mailboxes_del AFTER DELETE ON mailboxes BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER groups_ins AFTER INSERT ON distribution_groups BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER groups_upd AFTER UPDATE ON distribution_groups BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER groups_del AFTER DELETE ON distribution_groups BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER contacts_ins AFTER INSERT ON mail_contacts BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER contacts_upd AFTER UPDATE ON mail_contacts BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER contacts_del AFTER DELETE ON mail_contacts BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER addresses_ins AFTER INSERT ON addresses BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER addresses_upd AFTER UPDATE ON addresses BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER addresses_del AFTER DELETE ON addresses BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER group_members_ins AFTER INSERT ON group_members BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER group_members_del AFTER DELETE ON group_members BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER group_senders_ins AFTER INSERT ON group_sender_lists BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER group_senders_del AFTER DELETE ON group_sender_lists BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER address_policies_ins AFTER INSERT ON address_policies BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER address_policies_upd AFTER UPDATE ON address_policies BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER address_policies_del AFTER DELETE ON address_policies BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER remote_domains_ins AFTER INSERT ON remote_domains BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER remote_domains_upd AFTER UPDATE ON remote_domains BEGIN UPDATE org_version SET version = version + 1; END;
CREATE TRIGGER remote_domains_del AFTER DELETE ON remote_domains BEGIN UPDATE org_version SET version = version + 1; END;
