//! Carrier call control: the REST requests that dial, transfer and hang up a call, built by
//! each carrier's adapter as plain values (URL, headers, body) that the edge sends unchanged,
//! and the reading of the create-call answer. The carrier is parsed once ([`Carrier::parse`]);
//! nothing downstream compares carrier names. The other per-carrier differences are methods too,
//! next to what they decide: the incoming-call answer in `voice`, how a media upgrade proves
//! itself in `media::access`, the stream protocol adapter in `media::carrier`.

use crate::config::Config;
use crate::scheduling::dispatch::{client_state, Dial, TWILIO_STATUS_EVENTS};
use crate::voice::xml_escape;
use crate::webhooks::Provider;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thiserror::Error;

/// `User-Agent` of the create-call requests.
const USER_AGENT: &str = concat!("phone-agent/", env!("CARGO_PKG_VERSION"));

/// A carrier that streams call media to this worker (serialized as its route name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Carrier {
    Twilio,
    Telnyx,
    Exotel,
}

/// An HTTP `POST` to a carrier's REST API, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierRequest {
    pub url: String,
    /// Including the credentials.
    pub headers: Vec<(&'static str, String)>,
    /// Form-encoded or JSON, as the `Content-Type` header says.
    pub body: String,
}

/// Why no create-call request can be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ControlError {
    /// A setting the carrier's API needs is absent.
    #[error("{0} is not set")]
    NotConfigured(&'static str),
    /// The call's provider is not one the scheduler dials.
    #[error("provider {0} is not dialled by the scheduler")]
    NotDialled(String),
}

/// Why a carrier did not create the call.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DialError {
    /// The carrier refused the request (4xx): retrying the same request will not help.
    #[error("{carrier} refused the call (HTTP {status}): {message}")]
    Refused {
        carrier: &'static str,
        status: u16,
        message: String,
    },
    /// The carrier failed or throttled (429, 5xx).
    #[error("{carrier} is unavailable (HTTP {status})")]
    Unavailable { carrier: &'static str, status: u16 },
    /// A 2xx without the call id we need.
    #[error("{carrier} answered HTTP {status} without a call id")]
    Malformed { carrier: &'static str, status: u16 },
}

impl Carrier {
    /// The carrier named in a route or a call row (`twilio`, `telnyx`, `exotel`).
    pub fn parse(name: &str) -> Option<Carrier> {
        match name {
            "twilio" => Some(Carrier::Twilio),
            "telnyx" => Some(Carrier::Telnyx),
            "exotel" => Some(Carrier::Exotel),
            _ => None,
        }
    }

    /// The lower-case name, as in routes and call rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Twilio => "twilio",
            Carrier::Telnyx => "telnyx",
            Carrier::Exotel => "exotel",
        }
    }

    /// The webhook provider whose signature scheme the carrier's voice webhooks and status
    /// callbacks carry (`/voice/{carrier}/…`).
    pub fn webhook_provider(self) -> Provider {
        match self {
            Carrier::Twilio => Provider::Twilio,
            Carrier::Telnyx => Provider::Telnyx,
            Carrier::Exotel => Provider::Exotel,
        }
    }

    /// The carrier that places a call back of a call on this one: the scheduler does not dial
    /// Exotel (its Voicebot flows start from Exotel's side), so those call backs go out through
    /// Twilio.
    pub fn call_back_carrier(self) -> Carrier {
        match self {
            Carrier::Twilio | Carrier::Exotel => Carrier::Twilio,
            Carrier::Telnyx => Carrier::Telnyx,
        }
    }

    /// The create-call request placing one attempt of a scheduled call.
    pub fn dial(self, config: &Config, dial: &Dial) -> Result<CarrierRequest, ControlError> {
        match self {
            Carrier::Twilio => {
                let (sid, token) = twilio_credentials(config)?;
                Ok(CarrierRequest {
                    url: format!(
                        "{}{}",
                        config.providers.twilio_api_url,
                        twilio_calls_path(sid)
                    ),
                    headers: vec![
                        (
                            "content-type",
                            "application/x-www-form-urlencoded".to_owned(),
                        ),
                        ("authorization", basic_auth(sid, token)),
                        ("user-agent", USER_AGENT.to_owned()),
                    ],
                    body: twilio_create_form(dial),
                })
            }
            Carrier::Telnyx => {
                let key =
                    telnyx_key(config).ok_or(ControlError::NotConfigured("TELNYX_API_KEY"))?;
                let body =
                    telnyx_create_body(dial, config.providers.telnyx_connection_id.as_deref());
                Ok(CarrierRequest {
                    url: format!("{}/v2/calls", config.providers.telnyx_api_url),
                    headers: vec![
                        ("content-type", "application/json".to_owned()),
                        ("authorization", format!("Bearer {key}")),
                        ("user-agent", USER_AGENT.to_owned()),
                    ],
                    body: body.to_string(),
                })
            }
            Carrier::Exotel => Err(ControlError::NotDialled(self.as_str().to_owned())),
        }
    }

    /// The carrier's call id in its create-call answer.
    pub fn dial_reply(self, status: u16, body: &[u8]) -> Result<String, DialError> {
        let (id, message) = match self {
            Carrier::Twilio => ("/sid", "/message"),
            // Exotel is never dialled; reading its answer like Telnyx's is as good as any.
            Carrier::Telnyx | Carrier::Exotel => ("/data/call_control_id", "/errors/0/detail"),
        };
        parse_create(self.as_str(), status, body, id, message)
    }

    /// The request handing a live call to `to`; `None` when the carrier has no REST transfer
    /// (Exotel) or its credentials are not configured.
    pub fn transfer(self, config: &Config, call_id: &str, to: &str) -> Option<CarrierRequest> {
        match self {
            // New TwiML tears the stream down and dials the human; our socket closes with it.
            Carrier::Twilio => {
                let twiml = format!(
                    "<Response><Dial>{}</Dial></Response>",
                    xml_escape(to.trim())
                );
                twilio_call_update(config, call_id, &[("Twiml", &twiml)])
            }
            Carrier::Telnyx => telnyx_action(
                config,
                call_id,
                "transfer",
                json!({ "to": to.trim() }).to_string(),
            ),
            Carrier::Exotel => None,
        }
    }

    /// The request ending a live call once the agent is done or the stream was lost; `None`
    /// where closing the media stream already ends the call (Twilio's `<Connect>` with no verb
    /// after it, Exotel's flow going on) or the credentials are not configured.
    pub fn hangup(self, config: &Config, call_id: &str) -> Option<CarrierRequest> {
        match self {
            // Closing a Telnyx stream does not end the call (also when the stream was lost, so
            // the caller is not left in silence).
            Carrier::Telnyx => telnyx_action(config, call_id, "hangup", "{}".to_owned()),
            Carrier::Twilio | Carrier::Exotel => None,
        }
    }

    /// The request starting the carrier's recording of a live call, with the status callback
    /// (`callback_url`) it reports the finished recording to. Twilio: the Call Recordings
    /// resource (`POST …/Calls/{sid}/Recordings.json`), which records a call whose TwiML is a
    /// `<Connect><Stream>`; Telnyx: the `record_start` command (its `call.recording.saved`
    /// goes to the connection's webhook). `None` for Exotel or without credentials.
    pub fn start_recording(
        self,
        config: &Config,
        call_id: &str,
        callback_url: &str,
    ) -> Option<CarrierRequest> {
        match self {
            Carrier::Twilio => {
                let (sid, token) = twilio_credentials(config).ok()?;
                let path = twilio_call_path(sid, call_id);
                let path = path.strip_suffix(".json").unwrap_or(&path);
                Some(CarrierRequest {
                    url: format!("{}{path}/Recordings.json", config.providers.twilio_api_url),
                    headers: vec![
                        ("Authorization", basic_auth(sid, token)),
                        (
                            "Content-Type",
                            "application/x-www-form-urlencoded".to_owned(),
                        ),
                    ],
                    body: url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs([
                            ("RecordingStatusCallback", callback_url),
                            ("RecordingStatusCallbackEvent", "completed"),
                            ("RecordingStatusCallbackMethod", "POST"),
                            ("RecordingChannels", "dual"),
                        ])
                        .finish(),
                })
            }
            Carrier::Telnyx => telnyx_action(
                config,
                call_id,
                "record_start",
                json!({"format": "mp3", "channels": "dual"}).to_string(),
            ),
            Carrier::Exotel => None,
        }
    }

    /// The request ending a call whose media stream never connected: there is no stream to
    /// close, so Twilio gets `Status=completed` too. `None` for Exotel (no REST hang-up) or
    /// without credentials.
    pub fn end_call(self, config: &Config, call_id: &str) -> Option<CarrierRequest> {
        match self {
            Carrier::Twilio => twilio_call_update(config, call_id, &[("Status", "completed")]),
            Carrier::Telnyx | Carrier::Exotel => self.hangup(config, call_id),
        }
    }
}

impl std::fmt::Display for Carrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn twilio_credentials(config: &Config) -> Result<(&str, &str), ControlError> {
    let sid = config
        .providers
        .twilio_account_sid
        .as_deref()
        .ok_or(ControlError::NotConfigured("TWILIO_ACCOUNT_SID"))?;
    let token = config
        .secrets
        .twilio
        .first()
        .ok_or(ControlError::NotConfigured("TWILIO_AUTH_TOKEN"))?;
    Ok((sid, token))
}

/// The `Authorization` header of Twilio's REST API (also what fetches a recording's media);
/// `None` without credentials.
pub fn twilio_authorization(config: &Config) -> Option<String> {
    let (sid, token) = twilio_credentials(config).ok()?;
    Some(basic_auth(sid, token))
}

fn telnyx_key(config: &Config) -> Option<&str> {
    config.providers.telnyx_api_key.as_deref()
}

fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A Twilio update of a live call (`POST /2010-04-01/Accounts/{sid}/Calls/{call_sid}.json`):
/// new TwiML or a status; `None` without credentials.
fn twilio_call_update(
    config: &Config,
    call_sid: &str,
    form: &[(&str, &str)],
) -> Option<CarrierRequest> {
    let (sid, token) = twilio_credentials(config).ok()?;
    Some(CarrierRequest {
        url: format!(
            "{}{}",
            config.providers.twilio_api_url,
            twilio_call_path(sid, call_sid)
        ),
        headers: vec![
            ("Authorization", basic_auth(sid, token)),
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
        ],
        body: url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish(),
    })
}

/// A Telnyx call-control action (`POST /v2/calls/{call_control_id}/actions/{action}`).
fn telnyx_action(
    config: &Config,
    call_control_id: &str,
    action: &str,
    body: String,
) -> Option<CarrierRequest> {
    let key = telnyx_key(config)?;
    let id: String = url::form_urlencoded::byte_serialize(call_control_id.as_bytes()).collect();
    Some(CarrierRequest {
        url: format!(
            "{}/v2/calls/{id}/actions/{action}",
            config.providers.telnyx_api_url
        ),
        headers: vec![
            ("Authorization", format!("Bearer {key}")),
            ("Content-Type", "application/json".to_owned()),
        ],
        body,
    })
}

/// Path of Twilio's create-call resource for an account (`/2010-04-01/Accounts/{sid}/Calls.json`).
fn twilio_calls_path(account_sid: &str) -> String {
    let sid: String = url::form_urlencoded::byte_serialize(account_sid.as_bytes()).collect();
    format!("/2010-04-01/Accounts/{sid}/Calls.json")
}

/// Path of one live Twilio call (`/2010-04-01/Accounts/{sid}/Calls/{CallSid}.json`).
fn twilio_call_path(account_sid: &str, call_sid: &str) -> String {
    let enc = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    format!(
        "/2010-04-01/Accounts/{}/Calls/{}.json",
        enc(account_sid),
        enc(call_sid)
    )
}

/// Form body of Twilio's create call: the voice URL returns the stream markup, status callbacks
/// for every progress event (the parameter repeated, as Twilio requires), all carrying our id.
fn twilio_create_form(dial: &Dial) -> String {
    let query = dial.callback_query();
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("To", dial.to)
        .append_pair("From", dial.from)
        .append_pair(
            "Url",
            &format!("{}/voice/twilio/incoming?{query}", dial.base_url),
        )
        .append_pair("Method", "POST")
        .append_pair(
            "StatusCallback",
            &format!("{}/voice/twilio/status?{query}", dial.base_url),
        )
        .append_pair("StatusCallbackMethod", "POST");
    for event in TWILIO_STATUS_EVENTS {
        form.append_pair("StatusCallbackEvent", event);
    }
    form.finish()
}

/// JSON body of Telnyx's `POST /v2/calls`: `client_state` carries our id and attempt, the
/// media stream is started with the dial (docs/protocols.md §9.2), webhooks come to `/webhooks/telnyx`.
fn telnyx_create_body(dial: &Dial, connection_id: Option<&str>) -> Value {
    let mut body = json!({
        "to": dial.to,
        "from": dial.from,
        "webhook_url": format!("{}/webhooks/telnyx", dial.base_url),
        "webhook_url_method": "POST",
        "client_state": client_state(dial.call_id, dial.attempt),
        "stream_url": dial.stream_url("telnyx"),
        "stream_track": "inbound_track",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "PCMU",
    });
    if let Some(id) = connection_id {
        body["connection_id"] = Value::from(id);
    }
    body
}

fn parse_create(
    carrier: &'static str,
    status: u16,
    body: &[u8],
    id_pointer: &str,
    message_pointer: &str,
) -> Result<String, DialError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let at = |pointer: &str| {
        json.as_ref()
            .and_then(|j| j.pointer(pointer))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match status {
        200..=299 => at(id_pointer)
            .filter(|id| !id.is_empty())
            .ok_or(DialError::Malformed { carrier, status }),
        429 | 500..=599 => Err(DialError::Unavailable { carrier, status }),
        _ => Err(DialError::Refused {
            carrier,
            status,
            message: at(message_pointer).unwrap_or_else(|| "no message".to_owned()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::callback::{signed_query, CallbackKey};

    static KEY: std::sync::LazyLock<CallbackKey> =
        std::sync::LazyLock::new(|| CallbackKey::from_config(Some("server-key"), None).unwrap());

    fn dial() -> Dial<'static> {
        Dial {
            call_id: "call_1",
            attempt: 2,
            to: "+15558675310",
            from: "+15017122661",
            base_url: "https://worker.example.com",
            stream_token: "stk_1",
            callback_key: &KEY,
            callback_expires: 1_700_000_000,
        }
    }

    fn config(vars: &[(&str, &str)]) -> Config {
        crate::config::from_pairs(vars).unwrap()
    }

    fn configured() -> Config {
        config(&[
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_AUTH_TOKEN", "tok"),
            ("TWILIO_API_URL", "http://127.0.0.1:9001"),
            ("TELNYX_API_KEY", "KEY1"),
            ("TELNYX_API_URL", "http://127.0.0.1:9002"),
            ("TELNYX_CONNECTION_ID", "conn_1"),
        ])
    }

    /// `Basic base64("AC1:tok")`.
    const TWILIO_AUTH: &str = "Basic QUMxOnRvaw==";

    #[test]
    fn carrier_names_round_trip() {
        for carrier in [Carrier::Twilio, Carrier::Telnyx, Carrier::Exotel] {
            assert_eq!(Carrier::parse(carrier.as_str()), Some(carrier));
        }
        assert_eq!(Carrier::parse("bland"), None);
        assert_eq!(Carrier::parse("Twilio"), None);
        assert_eq!(Carrier::Telnyx.to_string(), "telnyx");
        // Stored session blobs and socket attachments keep the route name.
        assert_eq!(json!(Carrier::Exotel), json!("exotel"));
        assert_eq!(
            serde_json::from_value::<Carrier>(json!("twilio")).unwrap(),
            Carrier::Twilio
        );
        assert!(serde_json::from_value::<Carrier>(json!("vonage")).is_err());
    }

    #[test]
    fn status_callbacks_are_verified_as_the_carrier_signs_them() {
        for carrier in [Carrier::Twilio, Carrier::Telnyx, Carrier::Exotel] {
            // The route segment names the same provider in `/voice/…` and `/webhooks/…`.
            assert_eq!(carrier.webhook_provider().as_str(), carrier.as_str());
        }
    }

    #[test]
    fn call_backs_go_out_through_a_dialled_carrier() {
        assert_eq!(Carrier::Twilio.call_back_carrier(), Carrier::Twilio);
        assert_eq!(Carrier::Telnyx.call_back_carrier(), Carrier::Telnyx);
        assert_eq!(Carrier::Exotel.call_back_carrier(), Carrier::Twilio);
        for carrier in [Carrier::Twilio, Carrier::Telnyx, Carrier::Exotel] {
            let dialler = carrier.call_back_carrier();
            assert!(dialler.dial(&configured(), &dial()).is_ok(), "{carrier}");
        }
    }

    #[test]
    fn twilio_dial_request() {
        let request = Carrier::Twilio.dial(&configured(), &dial()).unwrap();
        assert_eq!(
            request.url,
            "http://127.0.0.1:9001/2010-04-01/Accounts/AC1/Calls.json"
        );
        assert_eq!(
            request.headers,
            [
                (
                    "content-type",
                    "application/x-www-form-urlencoded".to_owned()
                ),
                ("authorization", TWILIO_AUTH.to_owned()),
                ("user-agent", "phone-agent/0.1.0".to_owned()),
            ]
        );
        assert_eq!(request.body, twilio_create_form(&dial()));
    }

    #[test]
    fn telnyx_dial_request() {
        let request = Carrier::Telnyx.dial(&configured(), &dial()).unwrap();
        assert_eq!(request.url, "http://127.0.0.1:9002/v2/calls");
        assert_eq!(
            request.headers,
            [
                ("content-type", "application/json".to_owned()),
                ("authorization", "Bearer KEY1".to_owned()),
                ("user-agent", "phone-agent/0.1.0".to_owned()),
            ]
        );
        let body: Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(
            body,
            json!({
                "to": "+15558675310",
                "from": "+15017122661",
                "webhook_url": "https://worker.example.com/webhooks/telnyx",
                "webhook_url_method": "POST",
                "client_state": client_state("call_1", 2),
                "stream_url": "wss://worker.example.com/media/telnyx/call_1?token=stk_1",
                "stream_track": "inbound_track",
                "stream_bidirectional_mode": "rtp",
                "stream_bidirectional_codec": "PCMU",
                "connection_id": "conn_1",
            })
        );
    }

    #[test]
    fn dial_names_the_missing_setting() {
        let none = config(&[]);
        assert_eq!(
            Carrier::Twilio.dial(&none, &dial()),
            Err(ControlError::NotConfigured("TWILIO_ACCOUNT_SID"))
        );
        assert_eq!(
            Carrier::Twilio
                .dial(&config(&[("TWILIO_ACCOUNT_SID", "AC1")]), &dial())
                .unwrap_err()
                .to_string(),
            "TWILIO_AUTH_TOKEN is not set"
        );
        assert_eq!(
            Carrier::Telnyx.dial(&none, &dial()),
            Err(ControlError::NotConfigured("TELNYX_API_KEY"))
        );
        assert_eq!(
            Carrier::Exotel
                .dial(&configured(), &dial())
                .unwrap_err()
                .to_string(),
            "provider exotel is not dialled by the scheduler"
        );
    }

    #[test]
    fn twilio_transfer_request() {
        let request = Carrier::Twilio
            .transfer(&configured(), "CA/2", " +15550100 ")
            .unwrap();
        assert_eq!(
            request.url,
            "http://127.0.0.1:9001/2010-04-01/Accounts/AC1/Calls/CA%2F2.json"
        );
        assert_eq!(
            request.headers,
            [
                ("Authorization", TWILIO_AUTH.to_owned()),
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded".to_owned()
                ),
            ]
        );
        assert_eq!(
            request.body,
            "Twiml=%3CResponse%3E%3CDial%3E%2B15550100%3C%2FDial%3E%3C%2FResponse%3E"
        );
        let escaped = Carrier::Twilio
            .transfer(&configured(), "CA1", "<x>")
            .unwrap();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(escaped.body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(pairs[0].1, "<Response><Dial>&lt;x&gt;</Dial></Response>");
    }

    #[test]
    fn telnyx_transfer_and_hangup_requests() {
        let headers = [
            ("Authorization", "Bearer KEY1".to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ];
        let transfer = Carrier::Telnyx
            .transfer(&configured(), "v3:abc", " +1555 ")
            .unwrap();
        assert_eq!(
            transfer,
            CarrierRequest {
                url: "http://127.0.0.1:9002/v2/calls/v3%3Aabc/actions/transfer".into(),
                headers: headers.to_vec(),
                body: r#"{"to":"+1555"}"#.into(),
            }
        );
        assert_eq!(
            Carrier::Telnyx.hangup(&configured(), "v3:abc"),
            Some(CarrierRequest {
                url: "http://127.0.0.1:9002/v2/calls/v3%3Aabc/actions/hangup".into(),
                headers: headers.to_vec(),
                body: "{}".into(),
            })
        );
    }

    #[test]
    fn a_call_without_a_stream_is_ended_over_rest() {
        let request = Carrier::Twilio.end_call(&configured(), "CA1").unwrap();
        assert!(request.url.ends_with("/Calls/CA1.json"), "{}", request.url);
        assert_eq!(request.body, "Status=completed");
        assert_eq!(
            Carrier::Telnyx.end_call(&configured(), "v3:a"),
            Carrier::Telnyx.hangup(&configured(), "v3:a")
        );
        assert_eq!(Carrier::Twilio.end_call(&config(&[]), "CA1"), None);
        assert_eq!(Carrier::Exotel.end_call(&configured(), "x"), None);
    }

    #[test]
    fn no_control_request_where_the_stream_suffices_or_credentials_lack() {
        assert_eq!(Carrier::Twilio.hangup(&configured(), "CA1"), None);
        assert_eq!(Carrier::Exotel.hangup(&configured(), "x"), None);
        assert_eq!(Carrier::Exotel.transfer(&configured(), "x", "+1"), None);
        let none = config(&[]);
        assert_eq!(Carrier::Twilio.transfer(&none, "CA1", "+1"), None);
        assert_eq!(Carrier::Telnyx.transfer(&none, "v3:a", "+1"), None);
        assert_eq!(Carrier::Telnyx.hangup(&none, "v3:a"), None);
    }

    #[test]
    fn twilio_form_has_urls_and_repeated_events() {
        let form = twilio_create_form(&dial());
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| {
            pairs
                .iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("To"), ["+15558675310"]);
        assert_eq!(get("From"), ["+15017122661"]);
        let query = signed_query(&KEY, "call_1", 2, 1_700_000_000);
        assert!(query.starts_with("call_id=call_1&attempt=2&exp=1700000000&sig="));
        assert_eq!(
            get("Url"),
            [format!(
                "https://worker.example.com/voice/twilio/incoming?{query}"
            )]
        );
        assert_eq!(
            get("StatusCallback"),
            [format!(
                "https://worker.example.com/voice/twilio/status?{query}"
            )]
        );
        // What the carrier posts back names the call only with this MAC.
        let back = crate::webhooks::callback::verify_query(Some(&KEY), &query, 0).unwrap();
        assert_eq!((back.call_id.as_str(), back.attempt), ("call_1", 2));
        assert_eq!(get("StatusCallbackMethod"), ["POST"]);
        assert_eq!(get("StatusCallbackEvent"), TWILIO_STATUS_EVENTS);
        assert!(form.contains("To=%2B15558675310"));
    }

    #[test]
    fn telnyx_body_carries_state_stream_and_connection() {
        let body = telnyx_create_body(&dial(), Some("conn_1"));
        assert_eq!(body["connection_id"], "conn_1");
        assert_eq!(
            body["webhook_url"],
            "https://worker.example.com/webhooks/telnyx"
        );
        assert_eq!(
            body["stream_url"],
            "wss://worker.example.com/media/telnyx/call_1?token=stk_1"
        );
        let state = body["client_state"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(state)
            .unwrap();
        let v: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(v, json!({"call_id": "call_1", "attempt": 2}));
        assert!(telnyx_create_body(&dial(), None)
            .get("connection_id")
            .is_none());
        let plain = Dial {
            base_url: "http://127.0.0.1:8787",
            ..dial()
        };
        assert_eq!(
            telnyx_create_body(&plain, None)["stream_url"],
            "ws://127.0.0.1:8787/media/telnyx/call_1?token=stk_1"
        );
    }

    #[test]
    fn create_responses_are_read() {
        assert_eq!(
            Carrier::Twilio.dial_reply(201, br#"{"sid":"CA1","status":"queued"}"#),
            Ok("CA1".to_owned())
        );
        assert_eq!(
            Carrier::Twilio.dial_reply(400, br#"{"code":21201,"message":"No 'To' number"}"#),
            Err(DialError::Refused {
                carrier: "twilio",
                status: 400,
                message: "No 'To' number".into()
            })
        );
        assert_eq!(
            Carrier::Twilio.dial_reply(503, b"oops"),
            Err(DialError::Unavailable {
                carrier: "twilio",
                status: 503
            })
        );
        assert_eq!(
            Carrier::Twilio.dial_reply(201, b"{}"),
            Err(DialError::Malformed {
                carrier: "twilio",
                status: 201
            })
        );
        assert_eq!(
            Carrier::Telnyx.dial_reply(200, br#"{"data":{"call_control_id":"v3:abc"}}"#),
            Ok("v3:abc".to_owned())
        );
        assert!(matches!(
            Carrier::Telnyx.dial_reply(422, br#"{"errors":[{"detail":"bad from"}]}"#),
            Err(DialError::Refused { message, .. }) if message == "bad from"
        ));
    }
}
