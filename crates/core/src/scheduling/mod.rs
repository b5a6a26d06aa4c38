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

/// Which way a call goes. Stored as `inbound` / `outbound` in D1 (`calls.direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Someone called one of our numbers.
    Inbound,
    /// We place the call (API, call back, retry).
    Outbound,
}

impl Direction {
    /// Both directions.
    pub const ALL: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    /// Parses the stored name (the calls list's `direction` filter).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// Who carries a call (`calls.provider`): a dial provider for calls we place, or the carrier an
/// incoming call arrived on. Bland runs its own calls; the others stream media to this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallProvider {
    Bland,
    Twilio,
    Telnyx,
    Exotel,
}

impl CallProvider {
    /// Every provider a call row can name.
    pub const ALL: [CallProvider; 4] = [
        CallProvider::Bland,
        CallProvider::Twilio,
        CallProvider::Telnyx,
        CallProvider::Exotel,
    ];

    /// The stored name (`bland`, `twilio`, `telnyx`, `exotel`).
    pub fn as_str(self) -> &'static str {
        match self {
            CallProvider::Bland => "bland",
            CallProvider::Twilio => "twilio",
            CallProvider::Telnyx => "telnyx",
            CallProvider::Exotel => "exotel",
        }
    }

    /// Parses the stored name (exact, lower case).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The carrier streaming the call's media; `None` for Bland, which runs the call itself.
    pub fn carrier(self) -> Option<crate::carrier::Carrier> {
        crate::carrier::Carrier::parse(self.as_str())
    }
}

impl From<request::DialProvider> for CallProvider {
    fn from(p: request::DialProvider) -> Self {
        match p {
            request::DialProvider::Bland => CallProvider::Bland,
            request::DialProvider::Twilio => CallProvider::Twilio,
            request::DialProvider::Telnyx => CallProvider::Telnyx,
        }
    }
}

impl From<crate::carrier::Carrier> for CallProvider {
    fn from(c: crate::carrier::Carrier) -> Self {
        match c {
            crate::carrier::Carrier::Twilio => CallProvider::Twilio,
            crate::carrier::Carrier::Telnyx => CallProvider::Telnyx,
            crate::carrier::Carrier::Exotel => CallProvider::Exotel,
        }
    }
}

/// Lower-case hex SHA-256, for fingerprints and over-long idempotency keys.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    Sha256::digest(data)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::request::DialProvider;
    use super::*;
    use crate::carrier::Carrier;

    #[test]
    fn call_provider_names_round_trip_through_serde_and_parse() {
        for p in CallProvider::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<CallProvider>(&json).unwrap(), p);
            assert_eq!(CallProvider::parse(p.as_str()), Some(p));
        }
        assert_eq!(CallProvider::parse("resend"), None);
        assert!(serde_json::from_str::<CallProvider>("\"Twilio\"").is_err());
    }

    #[test]
    fn call_provider_agrees_with_dial_providers_and_carriers() {
        for d in DialProvider::ALL {
            assert_eq!(CallProvider::from(d).as_str(), d.as_str());
        }
        for c in [Carrier::Twilio, Carrier::Telnyx, Carrier::Exotel] {
            assert_eq!(CallProvider::from(c).carrier(), Some(c));
        }
        assert_eq!(CallProvider::Bland.carrier(), None);
    }

    #[test]
    fn direction_and_status_decode_the_stored_names() {
        for d in Direction::ALL {
            let json = format!("\"{}\"", d.as_str());
            assert_eq!(serde_json::from_str::<Direction>(&json).unwrap(), d);
            assert_eq!(Direction::parse(d.as_str()), Some(d));
        }
        assert_eq!(Direction::parse("Inbound"), None);
        assert_eq!(Direction::parse(""), None);
        for s in CallStatus::ALL {
            let json = format!("\"{}\"", s.as_str());
            assert_eq!(serde_json::from_str::<CallStatus>(&json).unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), json);
        }
        assert!(serde_json::from_str::<Direction>("\"sideways\"").is_err());
    }
}
