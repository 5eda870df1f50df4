//! The categorizer (Exchange's "phatcat"; PRODUCT §5): resolves every recipient of
//! a submitted message against the directory, expands distribution groups (nested,
//! loop-safe, deduplicated), redirects contacts to their external address, applies
//! the accepted-domain types, and gives each final recipient its next hop.
//! Pure: it returns the rows and tracking events to write.

use std::collections::HashSet;

use crate::directory::{Directory, DomainType, MemberRef, Resolution};
use crate::smtp::address::EmailAddress;
use crate::store::queue::{MessageRow, RecipientRow};
use crate::tracking::{Event, EventKind};

/// A message that arrived with more Received header fields than this (the one
/// Bridgehead added when it took the message in not counted) is a mail loop and
/// is bounced with 5.4.6 (PRODUCT §5; RFC 5321 §6.3). The one definition: the
/// README, PRODUCT and the NDR text all say "more than 30".
pub const MAX_RECEIVED_HEADERS: usize = 30;

/// Next-hop key of local mailbox delivery.
pub const MAILBOX_HOP: &str = "mailbox";
/// Next-hop key of recipients no send connector covers.
pub const UNREACHABLE_HOP: &str = "unreachable";

#[derive(Debug, Default)]
pub struct Categorized {
    /// Changed and new recipient rows.
    pub rows: Vec<RecipientRow>,
    pub events: Vec<Event>,
}

struct Run<'a> {
    dir: &'a Directory,
    msg: &'a MessageRow,
    route: &'a dyn Fn(&EmailAddress) -> String,
    next_seq: i64,
    /// Final destinations already given to a row: `mbx:<id>` or `ext:<address key>`.
    seen: HashSet<String>,
    /// Groups already expanded for this message (loops and diamonds).
    expanded: HashSet<i64>,
    out: Categorized,
}

/// Categorizes the `pending` recipients of `msg`. `received` is the number of
/// Received header fields in the stored message, ours included (a lower bound
/// when the header was read only in part); `route` names the next hop of a remote
/// address.
pub fn categorize(
    dir: &Directory,
    msg: &MessageRow,
    recipients: &[RecipientRow],
    received: usize,
    route: &dyn Fn(&EmailAddress) -> String,
) -> Categorized {
    let mut run = Run {
        dir,
        msg,
        route,
        next_seq: recipients.iter().map(|r| r.seq).max().unwrap_or(-1) + 1,
        seen: HashSet::new(),
        expanded: HashSet::new(),
        out: Categorized::default(),
    };
    // Destinations already settled by an earlier run count as seen.
    for r in recipients
        .iter()
        .filter(|r| r.status != "pending" && r.status != "expanded")
    {
        if let Some(id) = r.mailbox_id {
            run.seen.insert(format!("mbx:{id}"));
        } else if let Ok(a) = EmailAddress::parse(&r.address) {
            run.seen.insert(format!("ext:{}", a.key()));
        }
    }
    for r in recipients.iter().filter(|r| r.status == "pending") {
        let mut row = r.clone();
        // Ours is the first; the hops before us are the rest.
        if received.saturating_sub(1) > MAX_RECEIVED_HEADERS {
            fail(
                &mut row,
                "5.4.6",
                &format!(
                    "Hop count exceeded: more than {MAX_RECEIVED_HEADERS} Received headers, a mail loop"
                ),
            );
            run.event_fail(&row);
            run.out.rows.push(row);
            continue;
        }
        match EmailAddress::parse(&r.address) {
            Ok(a) => run.place(row, &a),
            Err(e) => {
                fail(&mut row, "5.1.3", &format!("Bad recipient address: {e}"));
                run.event_fail(&row);
                run.out.rows.push(row);
            }
        }
    }
    run.out
}

fn fail(row: &mut RecipientRow, code: &str, text: &str) {
    row.status = "failed".into();
    row.status_code = Some(code.into());
    row.diagnostic = Some(format!(
        "{} {code} {text}",
        if code.starts_with('5') { 550 } else { 450 }
    ));
    row.next_hop = None;
}

impl Run<'_> {
    fn event(&self, kind: EventKind, recipients: Vec<String>, status: String) -> Event {
        let mut e = Event::new(kind);
        e.queue_id = Some(self.msg.id.clone());
        e.message_id = self.msg.message_id.clone();
        e.sender = Some(self.msg.sender.clone());
        e.recipients = recipients;
        e.status = Some(status);
        e.size = Some(self.msg.size as u64);
        e
    }

    fn event_fail(&mut self, row: &RecipientRow) {
        let e = self.event(
            EventKind::Fail,
            vec![row.address.clone()],
            row.diagnostic.clone().unwrap_or_default(),
        );
        self.out.events.push(e);
    }

    fn child(&mut self, parent: &RecipientRow, address: &EmailAddress) -> RecipientRow {
        let seq = self.next_seq;
        self.next_seq += 1;
        RecipientRow {
            message_id: parent.message_id.clone(),
            seq,
            address: address.to_string(),
            orcpt: parent.orcpt.clone(),
            notify: parent.notify.clone(),
            status: "pending".into(),
            parent_seq: Some(parent.seq),
            next_hop: None,
            mailbox_id: None,
            attempts: 0,
            next_attempt_at: None,
            status_code: None,
            diagnostic: None,
            remote_mta: None,
            delay_notified: false,
            reported: false,
        }
    }

    /// Decides one recipient row (and its children, for groups and contacts).
    fn place(&mut self, mut row: RecipientRow, address: &EmailAddress) {
        match self.dir.resolve(address) {
            Resolution::Mailbox(m) if !m.enabled => {
                fail(&mut row, "5.2.1", "The mailbox is disabled");
                self.event_fail(&row);
                self.out.rows.push(row);
            }
            Resolution::Mailbox(m) => {
                if address.key() != m.primary_address.key() {
                    let e = self.event(
                        EventKind::Resolve,
                        vec![address.to_string()],
                        format!("resolved to {}", m.primary_address),
                    );
                    self.out.events.push(e);
                }
                if !self.seen.insert(format!("mbx:{}", m.id)) {
                    row.status = "duplicate".into();
                } else {
                    row.status = "queued".into();
                    row.next_hop = Some(MAILBOX_HOP.into());
                    row.mailbox_id = Some(m.id);
                }
                self.out.rows.push(row);
            }
            Resolution::Group(g) => {
                row.status = "expanded".into();
                if !self.expanded.insert(g.id) {
                    // Already expanded for this message (a loop or a diamond).
                    self.out.rows.push(row);
                    return;
                }
                let members: Vec<(MemberRef, EmailAddress)> = g
                    .members
                    .iter()
                    .filter_map(|m| self.dir.member_address(*m).map(|a| (*m, a.clone())))
                    .collect();
                let e = self.event(
                    EventKind::Expand,
                    members.iter().map(|(_, a)| a.to_string()).collect(),
                    format!(
                        "group {} expanded to {} member(s)",
                        g.primary_address,
                        members.len()
                    ),
                );
                self.out.events.push(e);
                let parent = row.clone();
                self.out.rows.push(row);
                for (member, addr) in members {
                    // A contact member goes straight to its external address.
                    let target = match member {
                        MemberRef::Contact(id) => {
                            self.dir.contact(id).map(|c| c.external_address.clone())
                        }
                        _ => Some(addr),
                    };
                    if let Some(target) = target {
                        let child = self.child(&parent, &target);
                        if let MemberRef::Contact(id) = member {
                            let name = self
                                .dir
                                .contact(id)
                                .map(|c| c.name.clone())
                                .unwrap_or_default();
                            let e = self.event(
                                EventKind::Redirect,
                                vec![target.to_string()],
                                format!(
                                    "contact {name} (member of {}) redirected to {target}",
                                    g.primary_address
                                ),
                            );
                            self.out.events.push(e);
                            self.remote(child, &target);
                        } else {
                            self.place(child, &target);
                        }
                    }
                }
            }
            Resolution::Contact(c) => {
                row.status = "expanded".into();
                let e = self.event(
                    EventKind::Redirect,
                    vec![address.to_string()],
                    format!("redirected to {}", c.external_address),
                );
                self.out.events.push(e);
                let target = c.external_address.clone();
                let child = self.child(&row, &target);
                self.out.rows.push(row);
                self.remote(child, &target);
            }
            Resolution::Unknown(d) if d.domain_type == DomainType::Authoritative => {
                fail(
                    &mut row,
                    "5.1.1",
                    "The recipient was not found in this organization",
                );
                self.event_fail(&row);
                self.out.rows.push(row);
            }
            // Internal relay: not here, so it lives elsewhere; external relay and
            // outside domains: always routed out.
            Resolution::Unknown(_) | Resolution::External => self.remote(row, address),
        }
    }

    fn remote(&mut self, mut row: RecipientRow, address: &EmailAddress) {
        if !self.seen.insert(format!("ext:{}", address.key())) {
            row.status = "duplicate".into();
            self.out.rows.push(row);
            return;
        }
        let hop = (self.route)(address);
        row.status = "queued".into();
        if hop == UNREACHABLE_HOP {
            row.status_code = Some("4.4.4".into());
            row.diagnostic = Some(format!(
                "451 4.4.4 No send connector covers {}",
                address.domain()
            ));
            let e = self.event(
                EventKind::Defer,
                vec![address.to_string()],
                "unreachable: no send connector".into(),
            );
            self.out.events.push(e);
        }
        row.next_hop = Some(hop);
        self.out.rows.push(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::tests::sample;

    fn msg() -> MessageRow {
        MessageRow {
            id: "Q1".into(),
            received_at: "2026-01-01T00:00:00.000Z".into(),
            sender: "x@elsewhere.org".into(),
            size: 10,
            message_id: None,
            subject: None,
            ret: None,
            envid: None,
            body_type: "7bit".into(),
            smtputf8: false,
            source: "test".into(),
            client_ip: None,
            stage: "submission".into(),
            suspended: false,
            poisoned: false,
            processing_count: 0,
            next_attempt_at: None,
            last_error: None,
            queue_version: 0,
        }
    }

    fn rcpt(seq: i64, address: &str) -> RecipientRow {
        RecipientRow {
            message_id: "Q1".into(),
            seq,
            address: address.into(),
            orcpt: None,
            notify: None,
            status: "pending".into(),
            parent_seq: None,
            next_hop: None,
            mailbox_id: None,
            attempts: 0,
            next_attempt_at: None,
            status_code: None,
            diagnostic: None,
            remote_mta: None,
            delay_notified: false,
            reported: false,
        }
    }

    fn run(rcpts: &[&str], received: usize) -> Categorized {
        let rows: Vec<_> = rcpts
            .iter()
            .enumerate()
            .map(|(i, a)| rcpt(i as i64, a))
            .collect();
        categorize(&sample(), &msg(), &rows, received, &|_| {
            UNREACHABLE_HOP.to_string()
        })
    }

    fn summary(c: &Categorized) -> Vec<String> {
        c.rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.address,
                    r.status,
                    r.next_hop
                        .clone()
                        .or(r.status_code.clone())
                        .unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn groups_contacts_and_domains() {
        // sales@ = alice (mailbox 1) + partner contact (bob@partner.test).
        let c = run(
            &[
                "sales@example.com",
                "alice.smith@example.com",
                "nobody@example.com",
                "x@eu.example.com",
                "y@other.org",
            ],
            1,
        );
        assert_eq!(
            summary(&c),
            vec![
                "sales@example.com expanded ",
                "Alice@example.com queued mailbox",
                "bob@partner.test queued unreachable",
                "alice.smith@example.com duplicate ",
                "nobody@example.com failed 5.1.1",
                "x@eu.example.com queued unreachable",
                "y@other.org queued unreachable",
            ]
        );
        let kinds: Vec<&str> = c.events.iter().map(|e| e.kind.as_str()).collect();
        assert!(
            kinds.contains(&"EXPAND") && kinds.contains(&"RESOLVE") && kinds.contains(&"FAIL"),
            "{kinds:?}"
        );
        // Children point at their parent.
        assert_eq!(c.rows[1].parent_seq, Some(0));
    }

    #[test]
    fn contacts_redirect() {
        let c = run(&["partner@example.com"], 1);
        assert_eq!(
            summary(&c),
            vec![
                "partner@example.com expanded ",
                "bob@partner.test queued unreachable"
            ]
        );
        assert_eq!(c.events[0].kind.as_str(), "REDIRECT");
    }

    #[test]
    fn loops_are_refused() {
        // `received` counts ours too: 30 hops before us pass, 31 are a loop.
        let c = run(&["alice@example.com"], MAX_RECEIVED_HEADERS + 2);
        assert_eq!(summary(&c), vec!["alice@example.com failed 5.4.6"]);
        let diag = c.rows[0].diagnostic.clone().unwrap_or_default();
        assert!(diag.contains("more than 30 Received"), "{diag}");
        let c = run(&["alice@example.com"], MAX_RECEIVED_HEADERS + 1);
        assert_eq!(summary(&c), vec!["alice@example.com queued mailbox"]);
    }
}
