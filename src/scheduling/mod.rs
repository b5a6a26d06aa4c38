//! Scheduling: timed work (the `Scheduler` Durable Object), dialling scheduled calls, and the
//! emails that announce them, call recordings copied into R2, outbound text messages and
//! campaign ticks.

pub mod bland;
pub mod campaigns;
pub mod dispatch;
pub mod emails;
pub mod messages;
pub mod outbox;
pub mod recordings;
pub mod reminders;
pub mod scheduler;
