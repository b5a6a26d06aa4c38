//! Thin helpers over D1: bind typed arguments, read typed rows, count changes.
//! Only the store's modules run SQL; tenant queries go through [`crate::store::tenant::Tenant`].

use crate::store::error::StoreError;
use js_sys::{Array, Reflect};
use phone_agent_core::ids::{
    AgentId, AppointmentId, CallId, CampaignId, DeliveryId, EmailId, EndpointId, EventId, KeyId,
    MessageId, NumberId, RecordingId, ReminderId, TenantId,
};
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::d1::{D1Database, D1PreparedStatement, D1Result};
use worker::worker_sys::D1Database as D1DatabaseSys;

/// Declares a row read from D1 and the columns it is read from, from one list of fields, so the
/// struct and its `SELECT` cannot drift apart: `Row::COLUMNS` is `"a, b, c"` (for any query
/// that reads the row: `SELECT`, `RETURNING`), and with `from "table WHERE …"`, `Row::SELECT` is
/// `SELECT a, b, c FROM table WHERE …`. Every field is public and named like its column.
macro_rules! row {
    (@columns $first:ident $(, $field:ident)*) => {
        concat!(stringify!($first) $(, ", ", stringify!($field))*)
    };
    (
        $(#[$meta:meta])*
        pub struct $row:ident from $from:literal {
            $($(#[$field_meta:meta])* $field:ident: $ty:ty,)+
        }
    ) => {
        $crate::store::db::row! {
            $(#[$meta])*
            pub struct $row {
                $($(#[$field_meta])* $field: $ty,)+
            }
        }

        impl $row {
            /// `SELECT` of this row's columns, with its `FROM` and `WHERE`.
            pub(in crate::store) const SELECT: &'static str = concat!(
                "SELECT ",
                $crate::store::db::row!(@columns $($field),+),
                " FROM ",
                $from
            );
        }
    };
    (
        $(#[$meta:meta])*
        pub struct $row:ident {
            $($(#[$field_meta:meta])* $field:ident: $ty:ty,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(serde::Deserialize)]
        pub struct $row {
            $($(#[$field_meta])* pub $field: $ty,)+
        }

        impl $row {
            /// This row's columns, in the order of its fields.
            // A row read only through its `SELECT` names its columns nowhere else.
            #[allow(dead_code)]
            pub(in crate::store) const COLUMNS: &'static str =
                $crate::store::db::row!(@columns $($field),+);
        }
    };
}
pub(in crate::store) use row;

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

impl Arg for f64 {
    fn js(&self) -> JsValue {
        JsValue::from_f64(*self)
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

macro_rules! id_args {
    ($($id:ty),*) => {$(
        impl Arg for $id {
            fn js(&self) -> JsValue {
                JsValue::from_str(self.as_str())
            }
        }
    )*};
}

id_args!(
    TenantId,
    CallId,
    AgentId,
    CampaignId,
    NumberId,
    EndpointId,
    EventId,
    KeyId,
    EmailId,
    DeliveryId,
    RecordingId,
    MessageId,
    AppointmentId,
    ReminderId
);

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
) -> Result<D1PreparedStatement, StoreError> {
    let values: Vec<JsValue> = args.iter().map(|a| a.js()).collect();
    Ok(db.prepare(sql).bind(&values)?)
}

/// All rows of a query.
pub async fn all<T: DeserializeOwned>(
    db: &D1Database,
    sql: &str,
    args: &[&dyn Arg],
) -> Result<Vec<T>, StoreError> {
    let result = stmt(db, sql, args)?.all().await?;
    Ok(result.results::<T>()?)
}

/// The first row of a query, if any.
pub async fn first<T: DeserializeOwned>(
    db: &D1Database,
    sql: &str,
    args: &[&dyn Arg],
) -> Result<Option<T>, StoreError> {
    Ok(all(db, sql, args).await?.into_iter().next())
}

/// The `id` column of every row of a query (work queues select ids, then lease each one).
pub async fn ids(db: &D1Database, sql: &str, args: &[&dyn Arg]) -> Result<Vec<String>, StoreError> {
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

/// The time a `SELECT min(…) AS at` query finds, if any (when a work queue is next due).
pub async fn earliest(
    db: &D1Database,
    sql: &str,
    args: &[&dyn Arg],
) -> Result<Option<i64>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Earliest {
        at: Option<i64>,
    }
    Ok(first::<Earliest>(db, sql, args).await?.and_then(|e| e.at))
}

/// Runs a write and returns how many rows it changed.
pub async fn run(db: &D1Database, sql: &str, args: &[&dyn Arg]) -> Result<usize, StoreError> {
    let result = stmt(db, sql, args)?.run().await?;
    changes(&result)
}

/// Runs statements atomically (D1 batches are transactions); returns each one's change count.
pub async fn batch(
    db: &D1Database,
    statements: Vec<D1PreparedStatement>,
) -> Result<Vec<usize>, StoreError> {
    let results = db.batch(statements).await?;
    results.iter().map(changes).collect()
}

/// What one statement of [`batch_returning`] did.
pub struct Outcome {
    /// Rows it changed.
    pub changes: usize,
    /// The `id` column of the first row it returned (`RETURNING id`), if it returned one.
    pub id: Option<String>,
}

/// Runs statements atomically like [`batch`]; returns each one's change count and first
/// returned `id`, all in one round trip to D1 (e.g. a write and the row it left stored, which no
/// other writer can change in between). The two values are read straight off D1's result
/// objects: workers-rs's `D1Result` deserializes a statement's whole `meta` (and every row)
/// through `serde_wasm_bindgen`, a dozen JS↔Wasm crossings where two property reads do.
pub async fn batch_returning(
    db: &D1Database,
    statements: Vec<D1PreparedStatement>,
) -> Result<Vec<Outcome>, StoreError> {
    let list: Array = statements
        .iter()
        .map(|s| JsValue::from(s.inner().clone()))
        .collect();
    let database: &D1DatabaseSys = db.as_ref().unchecked_ref();
    let results = JsFuture::from(database.batch(list).map_err(worker::Error::from)?)
        .await
        .map_err(worker::Error::from)?;
    let property = |object: &JsValue, key: &str| {
        Reflect::get(object, &JsValue::from_str(key)).map_err(worker::Error::from)
    };
    let mut outcomes = Vec::with_capacity(statements.len());
    for result in Array::from(&results).iter() {
        let changes = property(&property(&result, "meta")?, "changes")?
            .as_f64()
            .map_or(0, |n| n as usize);
        let rows = property(&result, "results")?;
        let id = match rows.dyn_ref::<Array>() {
            Some(rows) if rows.length() > 0 => property(&rows.get(0), "id")?.as_string(),
            _ => None,
        };
        outcomes.push(Outcome { changes, id });
    }
    Ok(outcomes)
}

fn changes(result: &D1Result) -> Result<usize, StoreError> {
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0))
}

/// Reads a boolean column: D1 returns 0/1 integers, while JSON written by us (the KV caches)
/// holds real booleans.
pub fn bool_from_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    use serde::Deserialize;
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::Number(n) => n.as_i64().unwrap_or(0) != 0,
        _ => false,
    })
}
