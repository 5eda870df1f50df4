//! Human explanations for enhanced status codes (RFC 3463), in the wording style of
//! the seed's NDR table (seed-features D-1, NDR-02: "The e-mail address could not be
//! found. … Check the address and try again."). One paragraph each: what happened,
//! then what the sender can do.

/// Parses "class.subject.detail" (RFC 3463) into numbers. Anything after the code
/// (a space and text) is ignored; the class must be 2, 4 or 5.
pub(crate) fn parse_status(status: &str) -> Option<(u8, u16, u16)> {
    let code = status.trim().split_ascii_whitespace().next()?;
    let mut parts = code.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let number = |s: &str| -> Option<u16> {
        if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let class = match class {
        "2" => 2,
        "4" => 4,
        "5" => 5,
        _ => return None,
    };
    Some((class, number(subject)?, number(detail)?))
}

/// A one-paragraph human explanation for an enhanced status code: what happened and
/// what to do. Known codes get specific text; anything else falls back to the class
/// (success, temporary, permanent) and the RFC 3463 subject (address, mailbox, mail
/// system, network and routing, protocol, content, security).
pub fn explanation(status: &str) -> &'static str {
    let Some((class, subject, detail)) = parse_status(status) else {
        return GENERIC;
    };
    specific(class, subject, detail).unwrap_or_else(|| by_subject(class, subject))
}

const GENERIC: &str = "The mail system could not process the message for this recipient. \
     The details below may help; if the problem continues, forward this report to your \
     e-mail administrator.";

fn specific(class: u8, subject: u16, detail: u16) -> Option<&'static str> {
    let text = match (class, subject, detail) {
        // ---- permanent failures (D-1, NDR-02) ----
        (5, 1, 0) => {
            "The e-mail address could not be found. Perhaps the recipient moved to a \
             different e-mail organization, or there was a mistake in the address. Check \
             the address and try again."
        }
        (5, 1, 1) => {
            "The e-mail address could not be found: the recipient's mail server says no \
             such mailbox exists. Perhaps the recipient moved to a different e-mail \
             organization, or there was a mistake in the address. Check the address and \
             try again."
        }
        (5, 1, 2) => {
            "The domain in the e-mail address (the part after the @) does not exist or \
             has no mail server. Check the spelling of the domain and try again."
        }
        (5, 1, 3) => {
            "The e-mail address is not valid: it contains a mistake in its format, such \
             as a space, a missing @ or a character that is not allowed. Check the \
             address and try again."
        }
        (5, 1, 4) => {
            "The e-mail address is ambiguous: more than one recipient matches it, or the \
             remote server does not recognize it. Check the address and try again; if it \
             is in your organization, tell your e-mail administrator."
        }
        (5, 1, 6) => {
            "The recipient's mailbox has moved, or its configuration on the mail server \
             is incomplete. Contact the recipient by some other means for the current \
             address; if the recipient is in your organization, ask your e-mail \
             administrator to check the mailbox settings."
        }
        (5, 1, 7) => {
            "Your own (sender) e-mail address is not valid, so the message was not \
             accepted. Ask your e-mail administrator to check your address settings."
        }
        (5, 1, 8) => {
            "The domain of your own (sender) e-mail address was not accepted by the \
             recipient's server, often because it cannot be found in DNS. Ask your e-mail \
             administrator to check your domain's DNS records."
        }
        (5, 1, 10) => {
            "The recipient's domain has declared (with a \"null MX\" DNS record) that it \
             does not accept any e-mail. Check the address; if it is correct, contact the \
             recipient by some other means."
        }
        (5, 2, 0) => {
            "The recipient's mailbox could not accept the message. Try again later, or \
             contact the recipient by some other means."
        }
        (5, 2, 1) => {
            "The recipient's mailbox is disabled or is not accepting messages (for \
             example, messages of this size or from this sender). Contact the recipient \
             by some other means; if the recipient is in your organization, ask your \
             e-mail administrator to check the mailbox."
        }
        (5, 2, 2) => {
            "The recipient's mailbox is full and cannot accept messages now. Try sending \
             the message again later, or contact the recipient by some other means and ask \
             them to make room."
        }
        (5, 2, 3) => {
            "The message is larger than the recipient's mailbox or system accepts. Send \
             it again without attachments, or with smaller ones, or share large files \
             another way."
        }
        (5, 2, 4) => {
            "The message could not be delivered to the members of a mailing list or \
             distribution group. Contact the list owner or your e-mail administrator."
        }
        (5, 3, 0) => {
            "The recipient's mail system reported an internal error or is not set up to \
             accept this message. Try again later; if the problem continues, contact your \
             e-mail administrator."
        }
        (5, 3, 1) => {
            "The recipient's mail system is full (out of disk space) and cannot accept \
             messages. Try again later; if the problem continues, contact the recipient's \
             e-mail administrator."
        }
        (5, 3, 2) => {
            "The recipient's mail system is not accepting messages from the network. Try \
             again later, or contact the recipient by some other means."
        }
        (5, 3, 3) => {
            "The recipient's mail system cannot handle a feature the message needs (for \
             example, it ran out of space while receiving it). Try again later, or send a \
             simpler message."
        }
        (5, 3, 4) => {
            "The message is larger than the receiving system accepts. Send it again \
             without attachments, or with smaller ones, or share large files another \
             way."
        }
        (5, 3, 5) => {
            "A configuration error in the e-mail system caused the message to be sent \
             back to the same server (a mail loop). Contact your administrator."
        }
        (5, 4, 0) => {
            "The recipient's mail server could not be found or reached: the lookup of \
             its domain in DNS failed, or the route configured for it is not valid. Check \
             the domain part of the address; if it is correct, ask your e-mail \
             administrator to check DNS and the send connectors."
        }
        (5, 4, 1) => {
            "The recipient's mail server did not answer, and the mail system gave up \
             trying. Check the address and try again later."
        }
        (5, 4, 3) => {
            "A routing server failed while the mail system looked for the recipient's \
             mail server. Try again later; if the problem continues, contact your e-mail \
             administrator."
        }
        (5, 4, 4) => {
            "No route to the recipient's domain could be found: the domain has no mail \
             server, or no connector covers it. Check the address; if it is correct, \
             contact your e-mail administrator."
        }
        (5, 4, 6) => {
            "A configuration error in the e-mail system caused the message to bounce \
             between two servers or to be forwarded between two recipients. Contact your \
             administrator."
        }
        (5, 4, 7) => {
            "The message could not be delivered in the time allowed: the recipient's \
             server did not accept it before the message expired. The server may be down \
             or overloaded. Check the address and try sending the message again later."
        }
        (5, 4, 8) => {
            "A configuration error in the e-mail system would have sent the message back \
             to this server (a routing loop). Contact your administrator."
        }
        (5, 5, 0) => {
            "The recipient's mail server rejected the message because of a protocol \
             error. Its reply is shown below. Try again later; if the problem continues, \
             contact your e-mail administrator."
        }
        (5, 5, 2) => {
            "The conversation with the recipient's mail server failed (a command was not \
             understood or came out of order). Try again later; if the problem continues, \
             contact your e-mail administrator."
        }
        (5, 5, 3) => {
            "The message has too many recipients for the receiving server. Split the \
             recipients over several messages and send them again."
        }
        (5, 6, 0) | (5, 6, 1) => {
            "The recipient's system cannot accept the content of this message (its format \
             or an attachment type is not supported). Send it again in a different format, \
             for example as plain text."
        }
        (5, 6, 3) => {
            "The message contains content the receiving system cannot handle, and it \
             could not be converted (for example, 8-bit text or internationalized \
             addresses sent to a server that does not support them). Send it again as \
             plain text with plain ASCII addresses."
        }
        (5, 6, 7) => {
            "The recipient's server does not accept internationalized (non-ASCII) e-mail \
             addresses. Use an ASCII address for the recipient if one exists."
        }
        (5, 7, 0) => {
            "The message was refused for a security or policy reason. Contact the \
             recipient by some other means, or ask your e-mail administrator for help."
        }
        (5, 7, 1) => {
            "You do not have permission to send to this recipient: delivery restrictions \
             apply (for example, the recipient accepts mail only from certain or \
             authenticated senders), or relaying is not allowed. For assistance, contact \
             your e-mail administrator."
        }
        (5, 7, 26) | (5, 7, 23) | (5, 7, 27) => {
            "The recipient's server refused the message because it failed sender \
             authentication checks (SPF, DKIM or DMARC) for your domain. Ask your e-mail \
             administrator to check your domain's SPF, DKIM and DMARC records."
        }

        // ---- temporary problems (delay notices, or failures after expiry) ----
        (4, 2, 2) => {
            "The recipient's mailbox is full for now. The mail system keeps trying in \
             case the recipient makes room."
        }
        (4, 3, 1) => {
            "The mail system is short of memory or disk space for now. The mail system \
             keeps trying; if this continues, contact your e-mail administrator."
        }
        (4, 3, 2) => {
            "The queue holding the message is suspended, or the receiving system is not \
             accepting messages for now. The mail system keeps trying."
        }
        (4, 4, 1) => {
            "The recipient's mail server is not responding. This is usually a temporary \
             network or server problem, and the mail system keeps trying."
        }
        (4, 4, 2) => {
            "The connection to the recipient's mail server was dropped during delivery. \
             This is usually a temporary network or server problem, and the mail system \
             keeps trying."
        }
        (4, 4, 3) => {
            "The recipient's mail server could not be looked up for now (a DNS or \
             routing server failure). The mail system keeps trying."
        }
        (4, 4, 6) => {
            "The message passed through too many mail servers (maximum hop count \
             exceeded), which usually means a mail loop. Contact your administrator."
        }
        (4, 4, 7) => {
            "The message was not delivered in the time allowed: the recipient's server \
             did not accept it before the message expired in the queue. Check the address \
             and the recipient's server, and try sending the message again later."
        }
        (4, 7, 0) | (4, 7, 1) => {
            "The recipient's server has temporarily refused the message for a policy \
             reason (for example, greylisting or rate limiting). The mail system keeps \
             trying."
        }

        // ---- success ----
        (2, 0, 0) | (2, 1, 5) | (2, 6, 0) => "The message was delivered to the recipient.",
        _ => return None,
    };
    Some(text)
}

/// Fallback by class and RFC 3463 subject (D-2).
fn by_subject(class: u8, subject: u16) -> &'static str {
    match (class, subject) {
        (2, _) => "The message was handled successfully for this recipient.",
        (4, 1) => {
            "There is a temporary problem with the recipient's address. The mail system \
             keeps trying; check the address if this continues."
        }
        (4, 2) => {
            "The recipient's mailbox cannot accept messages for now. The mail system \
             keeps trying."
        }
        (4, 3) => {
            "The recipient's mail system has a temporary problem. The mail system keeps \
             trying."
        }
        (4, 4) => {
            "There is a temporary network or routing problem reaching the recipient's \
             mail server. The mail system keeps trying."
        }
        (4, 5) => {
            "The recipient's mail server reported a temporary protocol problem. The mail \
             system keeps trying."
        }
        (4, 6) => {
            "The recipient's system cannot handle the message content for now. The mail \
             system keeps trying."
        }
        (4, 7) => {
            "The recipient's server has temporarily refused the message for a security or \
             policy reason. The mail system keeps trying."
        }
        (4, _) => {
            "There is a temporary problem delivering the message. The mail system keeps \
             trying; you do not need to send the message again."
        }
        (5, 1) => {
            "There is a problem with the recipient's e-mail address. Check the address \
             and try again."
        }
        (5, 2) => {
            "The recipient's mailbox cannot accept the message. Contact the recipient by \
             some other means."
        }
        (5, 3) => {
            "The recipient's mail system could not accept the message. Try again later; \
             if the problem continues, contact your e-mail administrator."
        }
        (5, 4) => {
            "The message could not be routed to the recipient's mail server. Check the \
             address; if it is correct, contact your e-mail administrator."
        }
        (5, 5) => {
            "The recipient's mail server rejected the message because of a protocol \
             error. Contact your e-mail administrator if the problem continues."
        }
        (5, 6) => {
            "The recipient's system cannot accept the content of this message. Send it \
             again in a different format, for example as plain text."
        }
        (5, 7) => {
            "The message was refused for a security or policy reason. For assistance, \
             contact your e-mail administrator."
        }
        _ => GENERIC,
    }
}

/// The fallback text a code would get without its own entry (tests check that each
/// required code has specific text).
#[cfg(test)]
pub(crate) fn by_subject_for_test(status: &str) -> &'static str {
    match parse_status(status) {
        Some((class, subject, _)) => by_subject(class, subject),
        None => GENERIC,
    }
}
