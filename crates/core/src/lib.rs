//! Pure core of phone-agent.
//!
//! Everything here is plain Rust that takes bytes and values and returns decisions; it never
//! touches `worker::` types, reads the clock or draws randomness itself (both are passed in),
//! so it is tested natively with `cargo test` and fuzzed.

pub mod agents;
pub mod analysis;
pub mod appointments;
pub mod auth;
pub mod campaigns;
pub mod carrier;
pub mod config;
pub mod delivery;
pub mod dialing;
pub mod features;
pub mod finalize;
pub mod hours;
pub mod http_tools;
pub mod ical;
pub mod ids;
pub mod json;
pub mod limits;
pub mod live;
pub mod media;
pub mod pagination;
pub mod patch;
pub mod providers;
pub mod rate_limit;
pub mod recording;
pub mod recording_transcript;
pub mod reminders;
pub mod routing;
pub mod scheduling;
pub mod session;
pub mod sms;
pub mod targets;
pub mod template;
pub mod usage;
pub mod voice;
pub mod webhooks;
pub mod zones;
