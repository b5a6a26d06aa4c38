//! `/api/v1/appointments`: the appointments agents booked on their calendars (list, get).

use super::request::{found, list_of};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, ApiResult};
use crate::store::appointments::{self, Appointment};
use crate::store::tenant::Tenant;
use worker::Request;

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    list_of(req, app, who, Appointment::json).await
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let appointment = found(appointments::get(&tenant, id).await?, "appointment", id)?;
    Ok(json_response(200, &appointment.json()))
}
