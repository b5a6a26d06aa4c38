//! Platform: the Worker's bindings and plumbing every other layer stands on (configuration,
//! HTTP errors and responses, outbound fetches, rate limits, health).

pub mod alarm;
pub mod app;
pub mod auth;
pub mod health;
pub mod http;
pub mod outbound;
pub mod rate_limit;
pub mod zones;
