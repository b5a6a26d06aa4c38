//! Carrier REST control: starting the call's recording, and hanging up or transferring the
//! call through the carrier's API when the session ends it.

use super::{EndReason, Session};
use crate::platform::http::log_line;
use crate::platform::outbound;
use serde_json::json;
use std::rc::Rc;
use std::time::Duration;

/// Carrier REST (transfer, hang-up) timeout.
const CARRIER_REST_TIMEOUT: Duration = Duration::from_secs(10);

impl Session {
    /// Asks the carrier to record the call when the agent records (its disclosure leads the
    /// greeting); the finished recording comes back to `POST /voice/{carrier}/recording`.
    pub(super) async fn start_recording(self: &Rc<Self>, carrier_call_id: Option<&str>) {
        let record = self.with_live(|live| live.setup.record).unwrap_or(false);
        let (Some(info), Some(config), Some(id)) =
            (self.info(), self.config.as_ref(), carrier_call_id)
        else {
            return;
        };
        if !record {
            return;
        }
        let base = info.base_url.as_deref().unwrap_or_default();
        let callback = format!("{base}/voice/{}/recording", info.carrier.as_str());
        let Some(request) = info.carrier.start_recording(config, id, &callback) else {
            self.record(
                "recording_not_started",
                json!({"reason": "carrier or credentials"}),
            );
            return;
        };
        match outbound::control(&request, CARRIER_REST_TIMEOUT).await {
            Ok(()) => self.record("recording_started", json!({})),
            Err(error) => {
                log_line(
                    json!({"level": "error", "msg": "start recording failed", "error": error}),
                );
                self.record("recording_not_started", json!({"reason": error}));
            }
        }
    }

    /// Tells the carrier the agent is done (transfer or hang-up); a caller hang-up needs nothing.
    pub(super) async fn leave_carrier(&self, reason: &EndReason) {
        let (Some(info), Some(config)) = (self.info(), self.config.as_ref()) else {
            return;
        };
        let carrier = info.carrier;
        let request = match (reason, &info.carrier_call_id) {
            (EndReason::Transfer(to), Some(id)) => carrier.transfer(config, id, to),
            (EndReason::Agent(_) | EndReason::StreamLost, Some(id)) => carrier.hangup(config, id),
            _ => None,
        };
        if let Some(request) = request {
            if let Err(error) = outbound::control(&request, CARRIER_REST_TIMEOUT).await {
                log_line(
                    json!({"level": "error", "msg": "carrier call control failed",
                    "error": error, "reason": reason.as_str()}),
                );
            }
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
