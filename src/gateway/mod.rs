//! Gateway: what providers send us (signed webhooks, carrier voice callbacks).

pub mod recordings;
pub mod voice;
pub mod webhooks;
