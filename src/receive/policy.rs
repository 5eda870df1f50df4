//! The receive-side decisions (PRODUCT §4): may this recipient be accepted from
//! this client, and do these credentials name a mailbox? Pure functions over a
//! directory snapshot, apart from the password check on the blocking pool.

use crate::directory::{Directory, DistributionGroup, DomainType, Resolution};
use crate::password;
use crate::smtp::address::EmailAddress;
use crate::smtp::reply::Reply;

#[derive(Debug)]
pub enum RcptDecision {
    Accept,
    Reject(Reply),
}

fn reject(code: u16, enhanced: &str, text: &str) -> RcptDecision {
    RcptDecision::Reject(Reply::new(code, enhanced, text))
}

/// Decides a RCPT TO. `may_relay`: the client authenticated, or the connector
/// is externally secured or allows anonymous relay.
pub fn check_recipient(
    dir: &Directory,
    rcpt: &EmailAddress,
    sender: Option<&EmailAddress>,
    auth_user: Option<&str>,
    may_relay: bool,
) -> RcptDecision {
    match dir.resolve(rcpt) {
        Resolution::Mailbox(m) if !m.enabled => {
            reject(550, "5.2.1", "Mailbox disabled, not accepting messages")
        }
        Resolution::Mailbox(_) | Resolution::Contact(_) => RcptDecision::Accept,
        Resolution::Group(g) => check_group(dir, g, sender, auth_user),
        Resolution::Unknown(d) if d.domain_type == DomainType::Authoritative => {
            reject(550, "5.1.1", "Recipient address rejected: user unknown")
        }
        // Relay domains: accepted for anyone, routed out by the queue.
        Resolution::Unknown(_) => RcptDecision::Accept,
        Resolution::External if may_relay => RcptDecision::Accept,
        Resolution::External => reject(550, "5.7.1", "Relay access denied"),
    }
}

/// Distribution-group submission restrictions (Exchange: "Message Delivery
/// Restrictions"): authenticated senders only, accept-from and reject-from lists.
fn check_group(
    dir: &Directory,
    g: &DistributionGroup,
    sender: Option<&EmailAddress>,
    auth_user: Option<&str>,
) -> RcptDecision {
    if g.only_authenticated && auth_user.is_none() {
        return reject(
            550,
            "5.7.1",
            "This group accepts mail only from authenticated senders",
        );
    }
    // The addresses the sender is known by: the envelope sender and, when
    // authenticated, every address of that mailbox.
    let mut senders: Vec<String> = sender.map(EmailAddress::key).into_iter().collect();
    if let Some(m) = auth_user
        .and_then(|u| EmailAddress::parse(u).ok())
        .and_then(|a| dir.mailbox_by_address(&a))
    {
        senders.extend(
            std::iter::once(&m.primary_address)
                .chain(&m.proxy_addresses)
                .map(EmailAddress::key),
        );
    }
    let listed = |list: &[EmailAddress]| list.iter().any(|a| senders.contains(&a.key()));
    if listed(&g.reject_from) {
        return reject(
            550,
            "5.7.1",
            "The sender is not allowed to send to this group",
        );
    }
    if !g.accept_from.is_empty() && !listed(&g.accept_from) {
        return reject(
            550,
            "5.7.1",
            "The sender is not allowed to send to this group",
        );
    }
    RcptDecision::Accept
}

/// `RCPT TO:<Postmaster>` (RFC 5321 §4.5.1) goes to postmaster at the default
/// accepted domain, or at the server's own name (both are validated domains).
pub fn postmaster(dir: &Directory, hostname: &str) -> Option<EmailAddress> {
    let domain = dir
        .accepted_domains()
        .iter()
        .find(|d| d.is_default)
        .map(|d| d.name.trim_start_matches("*.").to_string())
        .unwrap_or_else(|| hostname.to_string());
    EmailAddress::from_parts("postmaster", &domain).ok()
}

/// Checks SMTP AUTH credentials: the user is any address of an enabled mailbox
/// that has a password. Returns the mailbox's primary address. Unknown users cost
/// the same argon2 work as known ones, so timing does not reveal which exist.
pub async fn authenticate(
    dir: &Directory,
    user: &str,
    password: String,
) -> Result<Option<String>, password::Busy> {
    let mailbox = EmailAddress::parse(user)
        .ok()
        .and_then(|a| dir.mailbox_by_address(&a))
        .filter(|m| m.enabled);
    let hash = mailbox.and_then(|m| m.password_hash.clone());
    let (hash, real) = match hash {
        Some(h) => (h, true),
        None => (password::DUMMY_HASH.to_string(), false),
    };
    let ok = password::verify(hash, password).await?;
    Ok((ok && real)
        .then(|| mailbox.map(|m| m.primary_address.to_string()))
        .flatten())
}

/// True when `address` is one of the addresses of the mailbox whose primary
/// address is `primary` (an AUTH PLAIN authorization identity may only name the
/// authenticated mailbox itself).
pub fn same_mailbox(dir: &Directory, address: &str, primary: &str) -> bool {
    EmailAddress::parse(address)
        .ok()
        .and_then(|a| dir.mailbox_by_address(&a))
        .is_some_and(|m| m.primary_address.to_string().eq_ignore_ascii_case(primary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::tests::{addr, sample};

    fn code(d: RcptDecision) -> String {
        match d {
            RcptDecision::Accept => "250".into(),
            RcptDecision::Reject(r) => format!(
                "{} {}",
                r.code,
                r.enhanced.map(|e| e.to_string()).unwrap_or_default()
            ),
        }
    }

    #[test]
    fn relay_policy() {
        let d = sample();
        let s = addr("x@elsewhere.org");
        assert_eq!(
            code(check_recipient(
                &d,
                &addr("alice@example.com"),
                Some(&s),
                None,
                false
            )),
            "250"
        );
        assert_eq!(
            code(check_recipient(
                &d,
                &addr("nobody@example.com"),
                Some(&s),
                None,
                false
            )),
            "550 5.1.1"
        );
        assert_eq!(
            code(check_recipient(
                &d,
                &addr("nobody@eu.example.com"),
                Some(&s),
                None,
                false
            )),
            "250"
        );
        assert_eq!(
            code(check_recipient(
                &d,
                &addr("x@partner.test"),
                Some(&s),
                None,
                false
            )),
            "250"
        );
        assert_eq!(
            code(check_recipient(
                &d,
                &addr("x@other.org"),
                Some(&s),
                None,
                false
            )),
            "550 5.7.1"
        );
        assert_eq!(
            code(check_recipient(
                &d,
                &addr("x@other.org"),
                Some(&s),
                Some("alice@example.com"),
                true
            )),
            "250"
        );
        assert_eq!(
            code(check_recipient(
                &d,
                &addr("partner@example.com"),
                None,
                None,
                false
            )),
            "250"
        );
    }

    #[test]
    fn group_restrictions() {
        let d = sample(); // sales@ accepts only authenticated senders
        let s = addr("x@elsewhere.org");
        assert_eq!(
            code(check_recipient(
                &d,
                &addr("sales@example.com"),
                Some(&s),
                None,
                false
            )),
            "550 5.7.1"
        );
        assert_eq!(
            code(check_recipient(
                &d,
                &addr("sales@example.com"),
                Some(&s),
                Some("bob@example.com"),
                true
            )),
            "250"
        );
    }
}
