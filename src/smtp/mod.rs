//! Pure SMTP protocol pieces shared by the receive side and the delivery client:
//! no sockets, no policy.

pub mod address;
