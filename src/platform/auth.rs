//! Who is calling the API, shared by the API handlers, the audit log and the live view.

use crate::platform::http::ApiError;
use phone_agent_core::auth::{Access, Role};

/// Who is calling: the tenant every query is scoped to, and what they may do.
pub struct Principal {
    pub tenant_id: String,
    pub role: Role,
    /// Audit actor: the API key's id, or `admin` for the bootstrap `ADMIN_API_KEY`.
    pub actor: String,
    /// The bootstrap key, which alone may create tenants.
    pub bootstrap: bool,
    /// Carried into audit entries.
    pub request_id: String,
}

impl Principal {
    /// 403 unless the role grants `access`.
    pub fn require(&self, access: Access) -> Result<(), ApiError> {
        if self.role.allows(access) {
            Ok(())
        } else {
            Err(ApiError::new(
                403,
                "forbidden",
                "this API key's role does not allow that",
            ))
        }
    }
}
