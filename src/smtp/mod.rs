//! Pure SMTP protocol pieces shared by the receive side and the delivery client:
//! no sockets, no policy.
//!
//! - [`address`]: e-mail addresses and domains.
//! - [`command`]: parsing client commands and their ESMTP parameters (RFC 5321 §4.1).
//! - [`reply`]: building and parsing replies with enhanced status codes.
//! - [`data`]: the smuggling-proof streaming DATA decoder.
//! - [`auth`]: SASL PLAIN and LOGIN encoding (RFC 4954).
//! - [`ehlo`]: advertising and reading ESMTP extensions.

pub mod address;
pub mod auth;
pub mod command;
pub mod data;
pub mod ehlo;
pub mod reply;
