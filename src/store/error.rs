//! What can go wrong in storage. Every store function returns [`StoreError`]; it becomes HTTP
//! here and nowhere else.

use crate::platform::http::ApiError;
use phone_agent_core::auth::NoRandomness;

/// A storage failure: always our fault (a 500 that providers retry), never the caller's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// D1 refused or failed a statement, or its rows did not decode.
    #[error("D1: {0}")]
    D1(#[from] worker::Error),
    /// A column D1 returned is missing or not of its field's type.
    #[error("D1: column {0} missing or of another type")]
    Column(&'static str),
    /// A row this request just wrote or leased is not there.
    #[error("row missing: {0}")]
    Missing(&'static str),
    /// No randomness for a new id.
    #[error(transparent)]
    Randomness(#[from] NoRandomness),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}
