//! SASL helpers for SMTP AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN
//! (draft-murchison-sasl-login), for the server and the delivery client.
//!
//! Nothing here checks a password; the session hands the decoded credentials to
//! the directory. Credentials must never be logged, so [`PlainCredentials`]
//! hides the password in its `Debug` output.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::reply::Reply;

/// LOGIN's first challenge, base64 of `Username:`.
pub const LOGIN_USERNAME_PROMPT: &str = "VXNlcm5hbWU6";
/// LOGIN's second challenge, base64 of `Password:`.
pub const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

/// Longest AUTH response line we accept. RFC 4954 §4 asks servers to allow at
/// least 12288 octets for a line of base64.
pub const MAX_AUTH_LINE: usize = 12288;

/// Standard alphabet; padding optional on input (some clients omit it), always
/// written on output.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The SASL mechanisms we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// Case-insensitive lookup (RFC 4954 §4: mechanism names are case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// Why an AUTH response was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("response is not valid base64")]
    InvalidBase64,
    #[error("decoded response is not UTF-8")]
    NotUtf8,
    #[error("malformed PLAIN response: {0}")]
    Malformed(&'static str),
}

impl AuthError {
    /// `501 5.5.2 Cannot decode response` (RFC 4954 §4: a response that cannot
    /// be decoded gets 501 and the exchange ends).
    pub fn reply(&self) -> Reply {
        Reply::new(501, "5.5.2", "Cannot decode response")
    }
}

/// Decoded PLAIN credentials (RFC 4616 §2: `[authzid] NUL authcid NUL passwd`).
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// Identity to act as; `None` when empty (act as `authcid`).
    pub authzid: Option<String>,
    pub authcid: String,
    pub password: String,
}

impl fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Decodes a PLAIN response (the initial response or the answer to `334 `).
pub fn decode_plain(b64: &str) -> Result<PlainCredentials, AuthError> {
    let text = decode_base64_line(b64)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("expected exactly two NUL separators"));
    };
    if authcid.is_empty() {
        return Err(AuthError::Malformed("empty user name"));
    }
    if password.is_empty() {
        return Err(AuthError::Malformed("empty password"));
    }
    Ok(PlainCredentials {
        authzid: (!authzid.is_empty()).then(|| authzid.to_string()),
        authcid: authcid.to_string(),
        password: password.to_string(),
    })
}

/// Decodes one base64 line (a LOGIN answer) to UTF-8 text. Surrounding white
/// space is ignored; an empty line decodes to an empty string.
pub fn decode_base64_line(line: &str) -> Result<String, AuthError> {
    let bytes = BASE64
        .decode(line.trim())
        .map_err(|_| AuthError::InvalidBase64)?;
    String::from_utf8(bytes).map_err(|_| AuthError::NotUtf8)
}

/// Base64 with padding, for 334 challenges and client responses.
pub fn encode_base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// True when the client cancels the exchange with `*` (RFC 4954 §4); the
/// server then answers [`Reply::auth_cancelled`].
pub fn is_cancel(line: &str) -> bool {
    line.trim() == "*"
}

/// Client side: the PLAIN response for `authcid`/`password`, no authzid.
pub fn encode_plain(authcid: &str, password: &str) -> String {
    encode_base64(format!("\0{authcid}\0{password}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts() {
        assert_eq!(
            decode_base64_line(LOGIN_USERNAME_PROMPT).unwrap(),
            "Username:"
        );
        assert_eq!(
            decode_base64_line(LOGIN_PASSWORD_PROMPT).unwrap(),
            "Password:"
        );
    }

    #[test]
    fn plain_round_trip() {
        let b64 = encode_plain("alice@example.com", "s3cret pass");
        let c = decode_plain(&b64).unwrap();
        assert_eq!(c.authzid, None);
        assert_eq!(c.authcid, "alice@example.com");
        assert_eq!(c.password, "s3cret pass");
    }

    #[test]
    fn plain_with_authzid_and_utf8() {
        let b64 = encode_base64("admin\0jörg\0pässword".as_bytes());
        let c = decode_plain(&b64).unwrap();
        assert_eq!(c.authzid.as_deref(), Some("admin"));
        assert_eq!(c.authcid, "jörg");
        assert_eq!(c.password, "pässword");
    }

    #[test]
    fn plain_known_vector() {
        // RFC 4616 §4 example: "\0tim\0tanstaaftanstaaf".
        let c = decode_plain("AHRpbQB0YW5zdGFhZnRhbnN0YWFm").unwrap();
        assert_eq!(
            (c.authcid.as_str(), c.password.as_str()),
            ("tim", "tanstaaftanstaaf")
        );
        // Missing padding is tolerated.
        assert!(decode_plain("AGFsaWNlAHNlY3JldA").is_ok());
    }

    #[test]
    fn plain_errors() {
        let enc = |s: &[u8]| encode_base64(s);
        assert_eq!(decode_plain("!!!"), Err(AuthError::InvalidBase64));
        assert_eq!(
            decode_plain(&enc(b"\0alice\0\xff")),
            Err(AuthError::NotUtf8)
        );
        assert!(matches!(
            decode_plain(&enc(b"alice\0secret")),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            decode_plain(&enc(b"a\0b\0c\0d")),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            decode_plain(&enc(b"\0\0secret")),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            decode_plain(&enc(b"\0alice\0")),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(decode_plain(""), Err(AuthError::Malformed(_))));
        assert_eq!(
            AuthError::InvalidBase64.reply().to_string(),
            "501 5.5.2 Cannot decode response"
        );
    }

    #[test]
    fn login_lines() {
        assert_eq!(
            decode_base64_line(&encode_base64(b"alice")).unwrap(),
            "alice"
        );
        assert_eq!(decode_base64_line(" YWxpY2U= ").unwrap(), "alice");
        assert_eq!(decode_base64_line("").unwrap(), "");
        assert_eq!(decode_base64_line("YW=xp"), Err(AuthError::InvalidBase64));
    }

    #[test]
    fn cancel() {
        assert!(is_cancel("*"));
        assert!(is_cancel(" * "));
        assert!(!is_cancel("Kg=="));
        assert!(!is_cancel(""));
    }

    #[test]
    fn mechanisms() {
        assert_eq!(Mechanism::from_name("plain"), Some(Mechanism::Plain));
        assert_eq!(Mechanism::from_name("LOGIN"), Some(Mechanism::Login));
        assert_eq!(Mechanism::from_name("CRAM-MD5"), None);
        assert_eq!(Mechanism::Login.name(), "LOGIN");
    }

    #[test]
    fn debug_hides_password() {
        let c = decode_plain(&encode_plain("alice", "hunter2")).unwrap();
        let dbg = format!("{c:?}");
        assert!(dbg.contains("alice"));
        assert!(!dbg.contains("hunter2"));
    }
}
