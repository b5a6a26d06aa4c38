//! Carrier REST control: hanging up or transferring the call through the carrier's API when
//! the session ends it.

use super::{EndReason, Session};
use crate::platform::http::log_line;
use crate::platform::outbound;
use phone_agent_core::voice::{
    telnyx_action_path, telnyx_transfer_body, twilio_call_path, twilio_transfer_form,
};
use serde_json::json;
use std::time::Duration;
use worker::Method;

/// Carrier REST (transfer, hang-up) timeout.
const CARRIER_REST_TIMEOUT: Duration = Duration::from_secs(10);

impl Session {
    /// Tells the carrier the agent is done (transfer or hang-up); a caller hang-up needs nothing.
    pub(super) async fn leave_carrier(&self, reason: &EndReason) {
        let (Some(info), Some(config)) = (self.info(), self.config.as_ref()) else {
            return;
        };
        let providers = &config.providers;
        let twilio_auth = providers.twilio_account_sid.as_deref().and_then(|sid| {
            config
                .secrets
                .twilio
                .first()
                .map(|token| (sid, basic_auth(sid, token)))
        });
        let result = match (reason, info.carrier.as_str(), &info.carrier_call_id) {
            (EndReason::Transfer(to), "twilio", Some(call_sid)) => match &twilio_auth {
                // New TwiML tears the stream down and dials the human; our socket closes with it.
                Some((sid, auth)) => Some(
                    outbound::send(
                        Method::Post,
                        &format!(
                            "{}{}",
                            providers.twilio_api_url,
                            twilio_call_path(sid, call_sid)
                        ),
                        &[
                            ("Authorization", auth),
                            ("Content-Type", "application/x-www-form-urlencoded"),
                        ],
                        Some(twilio_transfer_form(to).as_bytes()),
                        CARRIER_REST_TIMEOUT,
                    )
                    .await,
                ),
                None => None,
            },
            (EndReason::Transfer(to), "telnyx", Some(id)) => match &providers.telnyx_api_key {
                Some(key) => Some(
                    outbound::send(
                        Method::Post,
                        &format!(
                            "{}{}",
                            providers.telnyx_api_url,
                            telnyx_action_path(id, "transfer")
                        ),
                        &[
                            ("Authorization", &format!("Bearer {key}")),
                            ("Content-Type", "application/json"),
                        ],
                        Some(telnyx_transfer_body(to).to_string().as_bytes()),
                        CARRIER_REST_TIMEOUT,
                    )
                    .await,
                ),
                None => None,
            },
            (EndReason::Agent(_) | EndReason::StreamLost, "telnyx", Some(id)) => {
                match &providers.telnyx_api_key {
                    // Closing a Telnyx stream does not end the call: hang up over REST (also when
                    // the stream was lost, so the caller is not left in silence).
                    Some(key) => Some(
                        outbound::send(
                            Method::Post,
                            &format!(
                                "{}{}",
                                providers.telnyx_api_url,
                                telnyx_action_path(id, "hangup")
                            ),
                            &[
                                ("Authorization", &format!("Bearer {key}")),
                                ("Content-Type", "application/json"),
                            ],
                            Some(b"{}"),
                            CARRIER_REST_TIMEOUT,
                        )
                        .await,
                    ),
                    None => None,
                }
            }
            _ => None,
        };
        match result {
            Some(Ok(reply)) if (200..300).contains(&reply.status) => {}
            Some(Ok(reply)) => log_line(
                json!({"level": "error", "msg": "carrier call control refused",
                "status": reply.status, "reason": reason.as_str()}),
            ),
            Some(Err(e)) => log_line(
                json!({"level": "error", "msg": "carrier call control failed",
                "error": e.to_string(), "reason": reason.as_str()}),
            ),
            None => {}
        }
        if matches!(reason, EndReason::Agent(_) | EndReason::Transfer(_)) {
            // Closing the stream ends Twilio's `<Connect>` (and with no verb after it, the
            // call) and lets Exotel's flow go on to its next applet.
            if let Some(ws) = self.carrier_ws() {
                let _ = ws.close(Some(1000), Some(reason.as_str()));
            }
        }
    }
}

fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
