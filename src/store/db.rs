//! Thin helpers over D1: bind typed arguments, read typed rows, count changes.
//! Every failure is our own (storage) fault, so it maps to a 500 that providers retry.

use crate::platform::http::ApiError;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;
use worker::d1::{D1Database, D1PreparedStatement, D1Result};

/// A value bound to a `?` placeholder.
pub trait Arg {
    /// The JS value D1 receives.
    fn js(&self) -> JsValue;
}

impl Arg for str {
    fn js(&self) -> JsValue {
        JsValue::from_str(self)
    }
}

impl Arg for String {
    fn js(&self) -> JsValue {
        JsValue::from_str(self)
    }
}

impl Arg for i64 {
    // Millisecond timestamps and counters stay far below 2^53, so f64 holds them exactly.
    fn js(&self) -> JsValue {
        JsValue::from_f64(*self as f64)
    }
}

impl Arg for u32 {
    fn js(&self) -> JsValue {
        JsValue::from_f64(f64::from(*self))
    }
}

impl Arg for bool {
    fn js(&self) -> JsValue {
        JsValue::from_f64(if *self { 1.0 } else { 0.0 })
    }
}

impl<T: Arg + ?Sized> Arg for &T {
    fn js(&self) -> JsValue {
        (**self).js()
    }
}

impl<T: Arg> Arg for Option<T> {
    fn js(&self) -> JsValue {
        self.as_ref().map_or(JsValue::NULL, Arg::js)
    }
}

/// Prepares `sql` with its arguments.
pub fn stmt(
    db: &D1Database,
    sql: &str,
    args: &[&dyn Arg],
) -> Result<D1PreparedStatement, ApiError> {
    let values: Vec<JsValue> = args.iter().map(|a| a.js()).collect();
    Ok(db.prepare(sql).bind(&values)?)
}

/// All rows of a query.
pub async fn all<T: DeserializeOwned>(
    db: &D1Database,
    sql: &str,
    args: &[&dyn Arg],
) -> Result<Vec<T>, ApiError> {
    let result = stmt(db, sql, args)?.all().await?;
    Ok(result.results::<T>()?)
}

/// The first row of a query, if any.
pub async fn first<T: DeserializeOwned>(
    db: &D1Database,
    sql: &str,
    args: &[&dyn Arg],
) -> Result<Option<T>, ApiError> {
    Ok(all(db, sql, args).await?.into_iter().next())
}

/// The `id` column of every row of a query (work queues select ids, then lease each one).
pub async fn ids(db: &D1Database, sql: &str, args: &[&dyn Arg]) -> Result<Vec<String>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    Ok(all::<Id>(db, sql, args)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect())
}

/// Runs a write and returns how many rows it changed.
pub async fn run(db: &D1Database, sql: &str, args: &[&dyn Arg]) -> Result<usize, ApiError> {
    let result = stmt(db, sql, args)?.run().await?;
    changes(&result)
}

/// Runs statements atomically (D1 batches are transactions); returns each one's change count.
pub async fn batch(
    db: &D1Database,
    statements: Vec<D1PreparedStatement>,
) -> Result<Vec<usize>, ApiError> {
    let results = db.batch(statements).await?;
    results.iter().map(changes).collect()
}

fn changes(result: &D1Result) -> Result<usize, ApiError> {
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0))
}
