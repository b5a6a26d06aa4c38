//! Scheduling: timed work (the `Scheduler` Durable Object), dialling scheduled calls, and the
//! emails that announce them, and call recordings copied into R2.

pub mod bland;
pub mod dispatch;
pub mod emails;
pub mod recordings;
pub mod scheduler;
