//! Store: D1 access (query helpers, the audit log).

pub mod audit;
pub mod calls;
pub mod db;
