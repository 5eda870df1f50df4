//! Bridgehead: a single-binary mail server, the modern equivalent of an Exchange
//! Hub Transport server. See `ARCHITECTURE.md` for the map of the code.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod directory;
pub mod dsn;
pub mod metrics;
pub mod password;
pub mod protocol_log;
pub mod queue;
pub mod receive;
pub mod routing;
pub mod serde_util;
pub mod settings;
pub mod smtp;
pub mod store;
pub mod tls;
pub mod tracking;
