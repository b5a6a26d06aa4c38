//! Store: every SQL statement. Tenant data is reached through [`tenant::Tenant`]; lists page
//! through [`page`]; failures are [`error::StoreError`].

pub mod agents;
pub mod appointments;
pub mod audit;
pub mod call_events;
pub mod call_queue;
pub mod calls;
pub mod campaigns;
// Private: no module outside the store can run SQL (the health probe, in `platform`, is the
// one statement elsewhere: it checks the binding, below the store).
mod db;
pub mod deliveries;
pub mod dialing;
pub mod emails;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod keys;
pub mod live_tickets;
pub mod messages;
pub mod numbers;
pub mod outbox;
pub mod page;
pub mod recordings;
pub mod reminders;
pub mod suppressions;
pub mod tenant;
pub mod tenants;
pub mod transcripts;
pub mod usage;
