//! ESMTP service extensions (RFC 5321 §4.1.1.1, §2.2): building our EHLO reply
//! and reading a remote server's.

use super::reply::Reply;

/// SASL mechanisms [`parse_ehlo`] recognises in a server's `AUTH` line. The
/// list is `&'static str` so [`Extensions`] can serve both sides; names not in
/// it are dropped (the client only uses PLAIN and LOGIN anyway).
const KNOWN_MECHANISMS: &[&str] = &[
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "DIGEST-MD5",
    "XOAUTH2",
    "OAUTHBEARER",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "GSSAPI",
    "NTLM",
    "EXTERNAL",
    "ANONYMOUS",
];

/// The extensions a server offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// RFC 1870 SIZE. `Some(0)` means "SIZE without a limit" (RFC 1870 §4);
    /// `None` means not offered.
    pub size: Option<u64>,
    /// RFC 3207. Only offered before TLS is active.
    pub starttls: bool,
    /// RFC 4954 mechanisms, upper-case. Empty means AUTH not offered.
    pub auth: Vec<&'static str>,
    /// RFC 2920.
    pub pipelining: bool,
    /// RFC 6152.
    pub eight_bit_mime: bool,
    /// RFC 6531.
    pub smtputf8: bool,
    /// RFC 2034.
    pub enhanced_status_codes: bool,
    /// RFC 3461.
    pub dsn: bool,
    /// RFC 3030 BDAT.
    pub chunking: bool,
    /// RFC 3030 BINARYMIME (meaningful only with CHUNKING).
    pub binarymime: bool,
}

impl Extensions {
    /// Our EHLO reply: `250-hostname greeting` then one keyword per line, in a
    /// stable order. No enhanced codes: the EHLO reply itself carries none
    /// (RFC 2034 §3 applies to replies after the extension is negotiated).
    pub fn reply(&self, hostname: &str, greeting: &str) -> Reply {
        let mut lines = vec![if greeting.is_empty() {
            hostname.to_string()
        } else {
            format!("{hostname} {greeting}")
        }];
        match self.size {
            Some(0) => lines.push("SIZE".into()),
            Some(n) => lines.push(format!("SIZE {n}")),
            None => {}
        }
        let flags = [
            (self.pipelining, "PIPELINING"),
            (self.eight_bit_mime, "8BITMIME"),
            (self.enhanced_status_codes, "ENHANCEDSTATUSCODES"),
            (self.starttls, "STARTTLS"),
        ];
        lines.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, k)| k.to_string()),
        );
        if !self.auth.is_empty() {
            lines.push(format!("AUTH {}", self.auth.join(" ")));
        }
        let flags = [
            (self.smtputf8, "SMTPUTF8"),
            (self.dsn, "DSN"),
            (self.binarymime, "BINARYMIME"),
            (self.chunking, "CHUNKING"),
        ];
        lines.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, k)| k.to_string()),
        );
        Reply::multi(250, "", lines)
    }
}

/// Reads the extensions from a server's EHLO reply (client side). The first
/// line is the server's name and greeting; each further line is a keyword with
/// optional parameters (RFC 5321 §4.1.1.1). Unknown keywords are ignored.
/// A non-250 reply yields no extensions.
pub fn parse_ehlo(reply: &Reply) -> Extensions {
    let mut ext = Extensions::default();
    if reply.code != 250 {
        return ext;
    }
    for line in reply.lines.iter().skip(1) {
        let mut words = line.split_ascii_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        // Old servers announce `AUTH=PLAIN LOGIN` (pre-standard form).
        let (keyword, first_param) = match keyword.split_once('=') {
            Some((k, p)) => (k, Some(p)),
            None => (keyword, None),
        };
        let keyword = keyword.to_ascii_uppercase();
        match keyword.as_str() {
            "SIZE" => {
                // A missing or unparsable limit is treated as "no fixed limit".
                ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
            }
            "STARTTLS" => ext.starttls = true,
            "AUTH" => {
                for name in first_param.into_iter().chain(words) {
                    if let Some(m) = KNOWN_MECHANISMS
                        .iter()
                        .find(|m| m.eq_ignore_ascii_case(name))
                        && !ext.auth.contains(m)
                    {
                        ext.auth.push(m);
                    }
                }
            }
            "PIPELINING" => ext.pipelining = true,
            "8BITMIME" => ext.eight_bit_mime = true,
            "SMTPUTF8" => ext.smtputf8 = true,
            "ENHANCEDSTATUSCODES" => ext.enhanced_status_codes = true,
            "DSN" => ext.dsn = true,
            "CHUNKING" => ext.chunking = true,
            "BINARYMIME" => ext.binarymime = true,
            _ => {}
        }
    }
    ext
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::reply::parse_reply;

    fn full() -> Extensions {
        Extensions {
            size: Some(36_700_160),
            starttls: true,
            auth: vec!["PLAIN", "LOGIN"],
            pipelining: true,
            eight_bit_mime: true,
            smtputf8: true,
            enhanced_status_codes: true,
            dsn: true,
            chunking: true,
            binarymime: false,
        }
    }

    #[test]
    fn builds_reply() {
        let wire = full()
            .reply("mx.example.com", "Hello client.example [192.0.2.1]")
            .to_wire();
        let expected = "250-mx.example.com Hello client.example [192.0.2.1]\r\n\
                        250-SIZE 36700160\r\n\
                        250-PIPELINING\r\n\
                        250-8BITMIME\r\n\
                        250-ENHANCEDSTATUSCODES\r\n\
                        250-STARTTLS\r\n\
                        250-AUTH PLAIN LOGIN\r\n\
                        250-SMTPUTF8\r\n\
                        250-DSN\r\n\
                        250 CHUNKING\r\n";
        assert_eq!(String::from_utf8(wire).unwrap(), expected);
    }

    #[test]
    fn minimal_reply() {
        let r = Extensions::default().reply("mx", "");
        assert_eq!(r.to_wire(), b"250 mx\r\n");
        let r = Extensions {
            size: Some(0),
            ..Default::default()
        }
        .reply("mx", "hi");
        assert_eq!(r.to_wire(), b"250-mx hi\r\n250 SIZE\r\n");
    }

    #[test]
    fn round_trip() {
        let mut ext = full();
        ext.binarymime = true;
        let wire = ext.reply("mx", "hi").to_wire();
        let (reply, _) = parse_reply(&wire).unwrap().unwrap();
        assert_eq!(parse_ehlo(&reply), ext);
    }

    #[test]
    fn parses_real_world_reply() {
        let wire = b"250-smtp.example.net at your service, [198.51.100.7]\r\n\
                     250-SIZE\r\n\
                     250-8bitmime\r\n\
                     250-AUTH LOGIN PLAIN XOAUTH2 X-UNKNOWN\r\n\
                     250-AUTH=LOGIN PLAIN\r\n\
                     250-X-EXPS GSSAPI\r\n\
                     250-ENHANCEDSTATUSCODES\r\n\
                     250-PIPELINING\r\n\
                     250 SMTPUTF8\r\n";
        let (reply, _) = parse_reply(wire).unwrap().unwrap();
        let ext = parse_ehlo(&reply);
        assert_eq!(ext.size, Some(0));
        assert!(ext.eight_bit_mime && ext.enhanced_status_codes && ext.pipelining && ext.smtputf8);
        assert!(!ext.starttls && !ext.dsn && !ext.chunking);
        assert_eq!(ext.auth, ["LOGIN", "PLAIN", "XOAUTH2"]);
    }

    #[test]
    fn failure_reply_has_no_extensions() {
        let r = Reply::new(502, "5.5.1", "EHLO not supported");
        assert_eq!(parse_ehlo(&r), Extensions::default());
    }
}
