//! Call scheduling: validation, the call state machine, calendar invites and emails.

pub mod bland;
pub mod dispatch;
pub mod email;
pub mod ics;
pub mod request;
pub mod state;

/// Where a call is in its life. Stored as the snake_case string in D1 (`calls.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Scheduled,
    Dispatching,
    Queued,
    Ringing,
    InProgress,
    Completed,
    NoAnswer,
    Busy,
    Failed,
    Canceled,
}

impl CallStatus {
    /// Every status, in life order.
    pub const ALL: [CallStatus; 10] = [
        CallStatus::Scheduled,
        CallStatus::Dispatching,
        CallStatus::Queued,
        CallStatus::Ringing,
        CallStatus::InProgress,
        CallStatus::Completed,
        CallStatus::NoAnswer,
        CallStatus::Busy,
        CallStatus::Failed,
        CallStatus::Canceled,
    ];

    /// The stored / wire name (`in_progress`, `no_answer`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Scheduled => "scheduled",
            CallStatus::Dispatching => "dispatching",
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in_progress",
            CallStatus::Completed => "completed",
            CallStatus::NoAnswer => "no_answer",
            CallStatus::Busy => "busy",
            CallStatus::Failed => "failed",
            CallStatus::Canceled => "canceled",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Lower-case hex SHA-256, for fingerprints and over-long idempotency keys.
fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    Sha256::digest(data)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}
