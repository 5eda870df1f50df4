//! Delivery (PRODUCT §5): hands one message copy to its destination and returns
//! an outcome. It never decides retries; the queue manager does, from the outcome.

pub mod dns;
pub mod local;
pub mod remote;
pub mod smtp;
