//! Pipeline: a call's status changes (and a campaign contact's, which follows its call) and
//! the events they publish to tenant endpoints.

pub mod appointments;
pub mod calendar_feed;
pub mod call_status;
pub mod campaigns;
pub mod forwarding;
