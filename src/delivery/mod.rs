//! Delivery (PRODUCT §5): hands one message copy to its destination and returns
//! an outcome. It never decides retries; the queue manager does, from the outcome.

pub mod local;
