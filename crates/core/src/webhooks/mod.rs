//! Inbound webhooks: signature schemes per provider and the canonical event they map to.

pub mod callback;
pub mod canonical;
pub mod signatures;

/// A webhook source, as named in `/webhooks/{provider}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Resend,
    Twilio,
    Telnyx,
    Bland,
    Retell,
    Vapi,
    Exotel,
    /// Any sender using the Standard Webhooks scheme.
    Standard,
}

impl Provider {
    /// Every provider, in route order.
    pub const ALL: [Provider; 8] = [
        Provider::Resend,
        Provider::Twilio,
        Provider::Telnyx,
        Provider::Bland,
        Provider::Retell,
        Provider::Vapi,
        Provider::Exotel,
        Provider::Standard,
    ];

    /// Parses the route segment (`resend`, `twilio`, …).
    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == slug)
    }

    /// The route segment and the `provider` field of canonical events.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Resend => "resend",
            Provider::Twilio => "twilio",
            Provider::Telnyx => "telnyx",
            Provider::Bland => "bland",
            Provider::Retell => "retell",
            Provider::Vapi => "vapi",
            Provider::Exotel => "exotel",
            Provider::Standard => "standard",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_round_trip() {
        for p in Provider::ALL {
            assert_eq!(Provider::from_slug(p.as_str()), Some(p));
        }
        assert_eq!(Provider::from_slug("Resend"), None);
    }
}
