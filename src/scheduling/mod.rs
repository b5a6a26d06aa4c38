//! Scheduling: timed work (the `Scheduler` Durable Object), dialling scheduled calls, and the
//! emails that announce them.

pub mod bland;
pub mod dispatch;
pub mod emails;
pub mod scheduler;
