//! The receive side (PRODUCT §4): receive connectors, listeners that follow them
//! live, and the SMTP session that turns a client's transaction into a durably
//! queued message.

pub mod connector;
pub mod listener;
pub mod policy;
pub mod session;
