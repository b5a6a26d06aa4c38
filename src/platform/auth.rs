//! Who is calling the API, shared by the API handlers, the audit log and the live view.

use phone_agent_core::auth::Role;

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
