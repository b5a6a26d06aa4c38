//! Live: a call in progress (the `CallSession` Durable Object, its speech providers and tool
//! calls) and the carrier media route that reaches it.

pub mod appointments;
pub mod callbacks;
pub mod http_tools;
pub mod media;
pub mod session;
pub mod speech;
