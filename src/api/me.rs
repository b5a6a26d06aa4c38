//! `/api/v1/me`: who the presented key is (role, tenant, whether it is the bootstrap key), so a
//! client such as the dashboard can offer only what the key may do.

use crate::platform::auth::Principal;
use crate::platform::http::{json_response, ApiResult};
use serde_json::json;

pub(super) fn get(who: &Principal) -> ApiResult {
    // The bootstrap key has no row in api_keys: its audit actor `admin` is not a key id.
    let key_id = (!who.bootstrap).then_some(who.actor.as_str());
    Ok(json_response(
        200,
        &json!({"key_id": key_id, "role": who.role, "tenant_id": who.tenant_id, "bootstrap": who.bootstrap}),
    ))
}
