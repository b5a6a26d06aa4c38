//! Inbound webhooks: signature schemes per provider and the canonical event they map to.

pub mod canonical;
pub mod signatures;
