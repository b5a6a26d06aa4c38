//! Who may carry a call's media stream, and what happens when its carrier socket goes away.
//!
//! The call id in `/media/{carrier}/{call_id}` is not a secret (a viewer key lists live calls), so
//! the stream is authenticated twice where the carrier allows it: the upgrade itself (Twilio's
//! `X-Twilio-Signature` over the `<Stream url>`; the URL's `?token=` for Telnyx and Exotel) and
//! the call's stream token (Twilio: in `start`'s custom parameters; the others: on the URL).
//! A socket whose token is not yet checked is *pending*: it never displaces the *active*
//! (verified) socket, and whatever it sends besides `connected` and a good `start` closes it.
//! An active socket that closes without `stop` leaves the call waiting [`STREAM_GRACE_MS`] for a
//! verified reconnect; after that the call is finalized.

use super::carrier::CarrierEvent;
use crate::auth::key_matches;
use crate::carrier::Carrier;
use crate::config::Config;
use crate::scheduling::CallStatus;
use crate::session::Turn;
use crate::voice::websocket_base;
use crate::webhooks::signatures::{verify, InboundRequest, Rejection, VerifyOptions};
use crate::webhooks::Provider;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How long a call waits for a verified reconnect after its carrier socket was lost.
pub const STREAM_GRACE_MS: u64 = 10_000;

/// Carrier sockets a call may have open at once (the active one, a reconnect, stragglers);
/// more are refused before the upgrade.
pub const MAX_CARRIER_SOCKETS: usize = 4;

/// Why a media stream is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StreamRefusal {
    /// A carrier that carries the token on the URL connected without one.
    #[error("the stream URL carries no token")]
    MissingToken,
    /// The token (URL or `start`) is not the call's.
    #[error("the stream token does not match this call")]
    InvalidToken,
    /// Media, DTMF or marks before the socket presented its token.
    #[error("the stream sent media before it was verified")]
    NotVerified,
    /// Too many carrier sockets are open for the call.
    #[error("too many media streams are open for this call")]
    TooManySockets,
}

impl StreamRefusal {
    /// Stable error code (HTTP body before the upgrade, close reason after it).
    pub fn code(self) -> &'static str {
        match self {
            StreamRefusal::MissingToken => "missing_stream_token",
            StreamRefusal::InvalidToken => "invalid_stream_token",
            StreamRefusal::NotVerified => "stream_not_verified",
            StreamRefusal::TooManySockets => "too_many_streams",
        }
    }
}

/// Where a carrier presents the call's stream token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPlace {
    /// `?token=` on the stream URL, checked before the upgrade (Telnyx, Exotel).
    Url,
    /// The `start` message's custom parameters (Twilio: its stream URL may not carry a query).
    Start,
}

impl Carrier {
    /// Where the carrier presents the call's stream token.
    pub fn token_place(self) -> TokenPlace {
        match self {
            Carrier::Twilio => TokenPlace::Start,
            Carrier::Telnyx | Carrier::Exotel => TokenPlace::Url,
        }
    }

    /// The provider whose webhook signature the media upgrade itself carries, checked with
    /// [`verify_signed_upgrade`] before any call is looked up: Twilio signs the `<Stream url>`;
    /// the others carry the URL token instead (`None`).
    pub fn upgrade_signer(self) -> Option<Provider> {
        match self {
            Carrier::Twilio => Some(Provider::Twilio),
            Carrier::Telnyx | Carrier::Exotel => None,
        }
    }
}

/// Checks the signature of a media upgrade where the carrier signs it (see
/// [`Carrier::upgrade_signer`]); an upgrade its carrier does not sign passes.
pub fn verify_signed_upgrade(
    carrier: Carrier,
    received_url: &str,
    headers: &[(String, String)],
    config: &Config,
) -> Result<(), Rejection> {
    match carrier {
        Carrier::Twilio => verify_twilio_upgrade(
            received_url,
            headers,
            &config.secrets.twilio,
            config.public_base_url.as_deref(),
        ),
        Carrier::Telnyx | Carrier::Exotel => Ok(()),
    }
}

/// What an accepted socket is until proven otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Its token was checked on the URL: it may carry the call at once.
    Verified,
    /// Its token comes in `start`: it carries nothing until then.
    Pending,
}

/// Whether `given` is the call's stream token, in constant time (a call without one accepts none).
pub fn token_matches(given: Option<&str>, expected: Option<&str>) -> bool {
    match (given, expected) {
        (Some(given), Some(expected)) if !given.is_empty() && !expected.is_empty() => {
            key_matches(given, expected)
        }
        _ => false,
    }
}

/// Refuses, before anything is looked up, an upgrade without the URL token its carrier carries.
pub fn require_url_token(carrier: Carrier, url_token: Option<&str>) -> Result<(), StreamRefusal> {
    let given = url_token.is_some_and(|t| !t.is_empty());
    if carrier.token_place() == TokenPlace::Url && !given {
        Err(StreamRefusal::MissingToken)
    } else {
        Ok(())
    }
}

/// The decision on an upgrade to `/media/{carrier}/{call_id}`: a URL token is required where the
/// carrier carries it and must match wherever it is given; `open_sockets` are the call's carrier
/// sockets already open.
pub fn upgrade_trust(
    carrier: Carrier,
    url_token: Option<&str>,
    expected: Option<&str>,
    open_sockets: usize,
) -> Result<Trust, StreamRefusal> {
    require_url_token(carrier, url_token)?;
    let given = url_token.filter(|t| !t.is_empty());
    let trust = match (carrier.token_place(), given) {
        (_, Some(token)) if !token_matches(Some(token), expected) => {
            return Err(StreamRefusal::InvalidToken)
        }
        (TokenPlace::Url, _) => Trust::Verified,
        // Twilio's own stream URL has no query: its token is checked in `start` regardless.
        (TokenPlace::Start, _) => Trust::Pending,
    };
    if open_sockets >= MAX_CARRIER_SOCKETS {
        return Err(StreamRefusal::TooManySockets);
    }
    Ok(trust)
}

/// Checks the `X-Twilio-Signature` of a media-stream upgrade: Twilio signs the `<Stream url>`
/// exactly as our TwiML gave it (`wss://…`, no parameters), so the received `http(s)` URL and
/// `PUBLIC_BASE_URL` are taken in their WebSocket spelling, with the webhook URL variants.
pub fn verify_twilio_upgrade(
    received_url: &str,
    headers: &[(String, String)],
    auth_tokens: &[String],
    public_base_url: Option<&str>,
) -> Result<(), Rejection> {
    let url = websocket_base(received_url);
    let base = public_base_url.map(websocket_base);
    let request = InboundRequest {
        method: "GET",
        url: &url,
        headers,
        body: &[],
    };
    let options = VerifyOptions {
        secrets: auth_tokens,
        // The signature covers no timestamp.
        tolerance_secs: 0,
        now_unix_ms: 0,
        public_base_url: base.as_deref(),
        vapi_plan: None,
    };
    verify(Provider::Twilio, &request, &options).map(|_| ())
}

/// What to do with an event from a pending socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingStep {
    /// Nothing yet (`connected`, a carrier error report): keep waiting for `start`.
    Wait,
    /// `start` with the call's token: the socket becomes the active one.
    Promote,
    /// `stop` before being verified: close it normally; the call is not affected.
    Leave,
    /// Close it with 1008.
    Refuse(StreamRefusal),
}

/// Judges one frame of a pending socket (the events a fresh adapter parsed from it) against the
/// call's stream token. A frame that yields nothing (media before `start` is only buffered by an
/// adapter, unknown events) is refused too: Twilio sends `connected` and `start` first.
pub fn pending_step(events: &[CarrierEvent], expected: Option<&str>) -> PendingStep {
    if events.is_empty() {
        return PendingStep::Refuse(StreamRefusal::NotVerified);
    }
    for event in events {
        match event {
            CarrierEvent::Connected | CarrierEvent::Error(_) => {}
            CarrierEvent::Start { params, .. } => {
                return if token_matches(params.get("token").map(String::as_str), expected) {
                    PendingStep::Promote
                } else {
                    PendingStep::Refuse(StreamRefusal::InvalidToken)
                };
            }
            CarrierEvent::Stop => return PendingStep::Leave,
            CarrierEvent::Audio(_) | CarrierEvent::Dtmf(_) | CarrierEvent::Mark(_) => {
                return PendingStep::Refuse(StreamRefusal::NotVerified)
            }
        }
    }
    PendingStep::Wait
}

/// Which of a call's carrier sockets carries it, and since when it has none.
/// Stored with the session (it must survive hibernation); sockets carry their id as attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierLink {
    /// The last socket id handed out (ids start at 1).
    next_id: u64,
    /// The verified socket carrying the call.
    active: Option<u64>,
    /// When the active socket went away without `stop` (Unix ms).
    lost_at_ms: Option<u64>,
}

impl CarrierLink {
    /// A fresh id for a socket being accepted.
    pub fn open(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The verified socket carrying the call, if any.
    pub fn active(&self) -> Option<u64> {
        self.active
    }

    /// Whether frames of `socket` are the call's (otherwise the socket is pending).
    pub fn is_active(&self, socket: u64) -> bool {
        self.active == Some(socket)
    }

    /// `socket` proved its token: it carries the call from now on (a verified reconnect replaces
    /// the previous socket, returned so it can be closed).
    pub fn verified(&mut self, socket: u64) -> Option<u64> {
        self.lost_at_ms = None;
        self.active.replace(socket).filter(|old| *old != socket)
    }

    /// `socket` closed or failed at `now_ms`; the grace deadline when it was the active one.
    pub fn closed(&mut self, socket: u64, now_ms: u64) -> Option<u64> {
        if !self.is_active(socket) {
            return None;
        }
        self.active = None;
        self.lost_at_ms = Some(now_ms);
        self.deadline()
    }

    /// When the call is given up if no verified socket comes back.
    pub fn deadline(&self) -> Option<u64> {
        match self.active {
            Some(_) => None,
            None => self
                .lost_at_ms
                .map(|lost| lost.saturating_add(STREAM_GRACE_MS)),
        }
    }

    /// Whether the stream is gone for good at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.deadline().is_some_and(|deadline| now_ms >= deadline)
    }

    /// The one alarm the session needs: the conversation's next timer or the grace deadline.
    pub fn alarm_at(&self, conversation_timer: Option<u64>) -> Option<u64> {
        match (conversation_timer, self.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The final status of a call whose stream was lost for good: `completed` if the caller was
/// heard at all, `failed` if they never got to speak.
pub fn lost_stream_status(turns: &[Turn]) -> CallStatus {
    let caller_spoke = turns
        .iter()
        .any(|t| t.user_text.as_deref().is_some_and(|u| !u.trim().is_empty()));
    if caller_spoke {
        CallStatus::Completed
    } else {
        CallStatus::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::AudioFormat;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use sha1::Sha1;
    use std::collections::BTreeMap;

    const TOKEN: &str = "stk_0123456789abcdefghijklmnop";

    #[test]
    fn token_place_per_carrier() {
        assert_eq!(Carrier::Twilio.token_place(), TokenPlace::Start);
        assert_eq!(Carrier::Telnyx.token_place(), TokenPlace::Url);
        assert_eq!(Carrier::Exotel.token_place(), TokenPlace::Url);
    }

    #[test]
    fn token_matches_only_the_calls_token() {
        assert!(token_matches(Some(TOKEN), Some(TOKEN)));
        assert!(!token_matches(Some("stk_wrong"), Some(TOKEN)));
        assert!(!token_matches(None, Some(TOKEN)));
        assert!(!token_matches(Some(""), Some("")));
        assert!(
            !token_matches(Some(TOKEN), None),
            "a call without a token accepts none"
        );
    }

    #[test]
    fn url_carriers_need_the_token_on_the_upgrade() {
        for carrier in [Carrier::Telnyx, Carrier::Exotel] {
            assert_eq!(
                upgrade_trust(carrier, None, Some(TOKEN), 0),
                Err(StreamRefusal::MissingToken)
            );
            assert_eq!(
                upgrade_trust(carrier, Some(""), Some(TOKEN), 0),
                Err(StreamRefusal::MissingToken)
            );
            assert_eq!(
                require_url_token(carrier, None),
                Err(StreamRefusal::MissingToken)
            );
            assert_eq!(require_url_token(carrier, Some("stk_x")), Ok(()));
            assert_eq!(
                upgrade_trust(carrier, Some("stk_x"), Some(TOKEN), 0),
                Err(StreamRefusal::InvalidToken)
            );
            assert_eq!(
                upgrade_trust(carrier, Some(TOKEN), Some(TOKEN), 1),
                Ok(Trust::Verified)
            );
        }
    }

    #[test]
    fn twilio_sockets_stay_pending_until_start() {
        assert_eq!(require_url_token(Carrier::Twilio, None), Ok(()));
        assert_eq!(
            upgrade_trust(Carrier::Twilio, None, Some(TOKEN), 0),
            Ok(Trust::Pending)
        );
        assert_eq!(
            upgrade_trust(Carrier::Twilio, Some(TOKEN), Some(TOKEN), 0),
            Ok(Trust::Pending)
        );
        assert_eq!(
            upgrade_trust(Carrier::Twilio, Some("stk_x"), Some(TOKEN), 0),
            Err(StreamRefusal::InvalidToken)
        );
    }

    #[test]
    fn socket_count_is_bounded() {
        assert_eq!(
            upgrade_trust(Carrier::Twilio, None, Some(TOKEN), MAX_CARRIER_SOCKETS),
            Err(StreamRefusal::TooManySockets)
        );
        assert_eq!(
            upgrade_trust(
                Carrier::Telnyx,
                Some(TOKEN),
                Some(TOKEN),
                MAX_CARRIER_SOCKETS
            ),
            Err(StreamRefusal::TooManySockets)
        );
    }

    fn start(token: Option<&str>) -> CarrierEvent {
        let mut params = BTreeMap::new();
        if let Some(t) = token {
            params.insert("token".to_owned(), t.to_owned());
        }
        CarrierEvent::Start {
            stream_id: "MZ1".into(),
            call_id: Some("CA1".into()),
            params,
            format: AudioFormat::Mulaw8k,
        }
    }

    #[test]
    fn pending_sockets_only_get_in_with_the_token() {
        let step = |events: &[CarrierEvent]| pending_step(events, Some(TOKEN));
        assert_eq!(step(&[start(Some(TOKEN))]), PendingStep::Promote);
        assert_eq!(
            step(&[start(None)]),
            PendingStep::Refuse(StreamRefusal::InvalidToken)
        );
        assert_eq!(
            step(&[start(Some("stk_wrong"))]),
            PendingStep::Refuse(StreamRefusal::InvalidToken)
        );
        assert_eq!(
            pending_step(&[start(Some(TOKEN))], None),
            PendingStep::Refuse(StreamRefusal::InvalidToken)
        );
        assert_eq!(step(&[CarrierEvent::Connected]), PendingStep::Wait);
        assert_eq!(step(&[CarrierEvent::Error("x".into())]), PendingStep::Wait);
        assert_eq!(step(&[CarrierEvent::Stop]), PendingStep::Leave);
        assert_eq!(step(&[]), PendingStep::Refuse(StreamRefusal::NotVerified));
        for event in [
            CarrierEvent::Audio(vec![0xff; 160]),
            CarrierEvent::Dtmf("1".into()),
            CarrierEvent::Mark("t0-s0".into()),
        ] {
            assert_eq!(
                step(&[event]),
                PendingStep::Refuse(StreamRefusal::NotVerified)
            );
        }
    }

    #[test]
    fn early_media_on_a_pending_socket_is_refused() {
        // The adapter buffers media before `start`: the frame yields no event at all.
        let mut adapter = crate::media::carrier::carrier_for("twilio").unwrap();
        let media = r#"{"event":"media","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"//8="}}"#;
        let events = adapter
            .parse(crate::media::carrier::Frame::Text(media))
            .unwrap();
        assert_eq!(
            pending_step(&events, Some(TOKEN)),
            PendingStep::Refuse(StreamRefusal::NotVerified)
        );
    }

    #[test]
    fn an_unverified_socket_never_displaces_the_active_one() {
        let mut link = CarrierLink::default();
        let carrier = link.open();
        assert_eq!(link.verified(carrier), None);
        let attacker = link.open();
        assert!(link.is_active(carrier));
        assert!(!link.is_active(attacker));
        // The attacker's socket closing changes nothing.
        assert_eq!(link.closed(attacker, 1_000), None);
        assert_eq!(link.active(), Some(carrier));
        assert_eq!(link.deadline(), None);
    }

    #[test]
    fn a_verified_reconnect_replaces_the_old_socket_and_cancels_the_grace() {
        let mut link = CarrierLink::default();
        let first = link.open();
        link.verified(first);
        let second = link.open();
        assert_eq!(link.verified(second), Some(first));
        assert_eq!(
            link.verified(second),
            None,
            "verifying twice replaces nothing"
        );
        assert_eq!(
            link.closed(first, 5),
            None,
            "the replaced socket's close is not a loss"
        );
        assert_eq!(link.closed(second, 1_000), Some(1_000 + STREAM_GRACE_MS));
        let third = link.open();
        link.verified(third);
        assert_eq!(link.deadline(), None);
        assert!(!link.expired(u64::MAX));
    }

    #[test]
    fn a_lost_stream_expires_after_the_grace_period() {
        let mut link = CarrierLink::default();
        let s = link.open();
        link.verified(s);
        assert!(!link.expired(u64::MAX), "a live stream never expires");
        let deadline = link.closed(s, 10_000).unwrap();
        assert!(!link.expired(deadline - 1));
        assert!(link.expired(deadline));
        assert_eq!(
            link.closed(s, 20_000),
            None,
            "a second close is not a new loss"
        );
        assert_eq!(link.deadline(), Some(deadline));
    }

    #[test]
    fn one_alarm_for_timers_and_the_grace_deadline() {
        let mut link = CarrierLink::default();
        let s = link.open();
        link.verified(s);
        assert_eq!(link.alarm_at(None), None);
        assert_eq!(link.alarm_at(Some(7)), Some(7));
        link.closed(s, 1_000);
        let deadline = 1_000 + STREAM_GRACE_MS;
        assert_eq!(link.alarm_at(None), Some(deadline));
        assert_eq!(link.alarm_at(Some(2_000)), Some(2_000));
        assert_eq!(link.alarm_at(Some(deadline + 1)), Some(deadline));
    }

    #[test]
    fn the_link_survives_serialization() {
        let mut link = CarrierLink::default();
        let s = link.open();
        link.verified(s);
        link.closed(s, 42);
        let back: CarrierLink =
            serde_json::from_str(&serde_json::to_string(&link).unwrap()).unwrap();
        assert_eq!(back, link);
        let mut back = back;
        assert_eq!(back.open(), 2, "ids are never reused");
    }

    fn turn(user: Option<&str>) -> Turn {
        Turn {
            id: 0,
            user_text: user.map(str::to_owned),
            agent_text: "Hello!".into(),
            unheard_text: String::new(),
            tool_calls: vec![],
            tool_runs: vec![],
            interrupted: false,
            started_at_ms: 0,
            ended_at_ms: 0,
            metrics: Default::default(),
        }
    }

    #[test]
    fn lost_stream_status_depends_on_whether_the_caller_was_heard() {
        assert_eq!(lost_stream_status(&[]), CallStatus::Failed);
        assert_eq!(lost_stream_status(&[turn(None)]), CallStatus::Failed);
        assert_eq!(lost_stream_status(&[turn(Some("  "))]), CallStatus::Failed);
        assert_eq!(
            lost_stream_status(&[turn(None), turn(Some("Hi"))]),
            CallStatus::Completed
        );
    }

    fn sign(url: &str) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(b"12345").unwrap();
        mac.update(url.as_bytes());
        BASE64.encode(mac.finalize().into_bytes())
    }

    fn headers(signature: &str) -> Vec<(String, String)> {
        vec![("x-twilio-signature".to_owned(), signature.to_owned())]
    }

    #[test]
    fn twilio_upgrade_signed_over_the_stream_url() {
        let tokens = ["12345".to_owned()];
        let local = "ws://127.0.0.1:8787/media/twilio/call_1";
        // Received as http (workerd), signed as the TwiML's ws URL.
        let received = "http://127.0.0.1:8787/media/twilio/call_1";
        assert_eq!(
            verify_twilio_upgrade(received, &headers(&sign(local)), &tokens, None),
            Ok(())
        );
        // Behind a proxy: the public wss URL, with or without the default port.
        let public = "wss://agent.example.com/media/twilio/call_1";
        let behind = "http://10.0.0.5:8787/media/twilio/call_1";
        for signed in [public, "wss://agent.example.com:443/media/twilio/call_1"] {
            assert_eq!(
                verify_twilio_upgrade(
                    behind,
                    &headers(&sign(signed)),
                    &tokens,
                    Some("https://agent.example.com/")
                ),
                Ok(())
            );
        }
    }

    #[test]
    fn twilio_upgrade_refusals() {
        let tokens = ["12345".to_owned()];
        let received = "http://127.0.0.1:8787/media/twilio/call_1";
        assert_eq!(
            verify_twilio_upgrade(received, &[], &tokens, None),
            Err(Rejection::MissingHeader("x-twilio-signature"))
        );
        for signed in [
            "ws://127.0.0.1:8787/media/twilio/call_2",
            "ws://127.0.0.1:8787/media/twilio/call_1?token=x",
            // Twilio signs the ws URL it was given, never the http spelling.
            "http://127.0.0.1:8787/media/twilio/call_1",
        ] {
            assert_eq!(
                verify_twilio_upgrade(received, &headers(&sign(signed)), &tokens, None),
                Err(Rejection::NoMatchingSignature),
                "{signed}"
            );
        }
        // A query added by the sender is part of what must have been signed.
        let with_query = "http://127.0.0.1:8787/media/twilio/call_1?x=1";
        assert_eq!(
            verify_twilio_upgrade(
                with_query,
                &headers(&sign("ws://127.0.0.1:8787/media/twilio/call_1")),
                &tokens,
                None
            ),
            Err(Rejection::NoMatchingSignature)
        );
        assert_eq!(
            verify_twilio_upgrade(received, &headers("AAAA"), &[], None),
            Err(Rejection::NotConfigured)
        );
    }

    #[test]
    fn only_a_carrier_that_signs_its_upgrade_is_checked_for_a_signature() {
        let config =
            Config::from_lookup(|name| (name == "TWILIO_AUTH_TOKEN").then(|| "12345".to_owned()))
                .unwrap();
        let url = |carrier: Carrier| format!("http://127.0.0.1:8787/media/{carrier}/call_1");
        assert_eq!(Carrier::Twilio.upgrade_signer(), Some(Provider::Twilio));
        assert_eq!(
            verify_signed_upgrade(Carrier::Twilio, &url(Carrier::Twilio), &[], &config),
            Err(Rejection::MissingHeader("x-twilio-signature"))
        );
        let signed = headers(&sign("ws://127.0.0.1:8787/media/twilio/call_1"));
        assert_eq!(
            verify_signed_upgrade(Carrier::Twilio, &url(Carrier::Twilio), &signed, &config),
            Ok(())
        );
        for carrier in [Carrier::Telnyx, Carrier::Exotel] {
            // Their proof is the URL token, required before the call is looked up.
            assert_eq!(carrier.upgrade_signer(), None);
            assert_eq!(carrier.token_place(), TokenPlace::Url);
            assert_eq!(
                verify_signed_upgrade(carrier, &url(carrier), &[], &config),
                Ok(())
            );
        }
    }
}
