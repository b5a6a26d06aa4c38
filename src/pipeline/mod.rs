//! Pipeline: a call's status changes and the events they publish to tenant endpoints.

pub mod appointments;
pub mod calendar_feed;
pub mod call_status;
pub mod forwarding;
