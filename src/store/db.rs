//! Thin helpers over D1: bind typed arguments, read typed rows, count changes.
//! Only the store's modules run SQL; tenant queries go through [`crate::store::tenant::Tenant`].

use crate::store::error::StoreError;
use js_sys::{Array, Promise, Reflect};
use phone_agent_core::auth::Role;
use phone_agent_core::ids::{
    AgentId, AppointmentId, CallId, CampaignId, DeliveryId, EmailId, EndpointId, EventId, KeyId,
    MessageId, NumberId, RecordingId, ReminderId, TenantId,
};
use phone_agent_core::scheduling::{CallProvider, CallStatus, Direction};
use std::cell::Cell;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::d1::{D1Database, D1PreparedStatement};
use worker::worker_sys::types::{D1Database as D1DatabaseSys, D1Result};

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

        $crate::store::db::from_row!($row { $($field),+ });

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

/// Implements [`FromRow`] for a struct whose fields are read from the columns they are named
/// like (`field = "column"` where the column's name is a keyword).
macro_rules! from_row {
    (@column $field:ident) => { stringify!($field) };
    (@column $field:ident $column:literal) => { $column };
    ($row:ident { $($field:ident $(= $column:literal)?),+ $(,)? }) => {
        impl $crate::store::db::FromRow for $row {
            fn from_row(
                row: &$crate::store::db::Row,
            ) -> Result<Self, $crate::store::error::StoreError> {
                let value = Self {
                    $($field: row.get($crate::store::db::from_row!(@column $field $($column)?)),)+
                };
                row.checked(value)
            }
        }
    };
}
pub(in crate::store) use from_row;

/// A row read from D1, built column by column. Not `serde`: a derived `Deserialize` compiles a
/// `deserialize_struct` per row type for the deserializer it is read with (~2.4 KB of wasm
/// each through `serde_wasm_bindgen`, ~4 KB through `serde_json`); a column read is a call.
pub trait FromRow: Sized {
    /// The row from D1's object for it.
    fn from_row(row: &Row) -> Result<Self, StoreError>;
}

/// A row whose columns are not read (whether a query finds any).
impl FromRow for serde::de::IgnoredAny {
    fn from_row(_: &Row) -> Result<Self, StoreError> {
        Ok(serde::de::IgnoredAny)
    }
}

/// One row as D1 returns it: an object of column values, and the first column that could not
/// be read.
pub struct Row {
    object: JsValue,
    failed: Cell<Option<&'static str>>,
}

impl Row {
    /// Column `name` as a `T`; a missing column reads as `null`. A column that is not a `T`
    /// reads as a placeholder and fails the row in [`Row::checked`].
    // One call per field, no early return: a `?` per field compiled a drop of every field
    // read before it at each exit, ~1.4 KB of wasm per row type.
    #[inline(never)]
    pub fn get<T: Column>(&self, name: &'static str) -> T {
        let read = Reflect::get(&self.object, &JsValue::from_str(name))
            .ok()
            .and_then(|value| T::read(&value));
        read.unwrap_or_else(|| {
            if self.failed.get().is_none() {
                self.failed.set(Some(name));
            }
            T::placeholder()
        })
    }

    /// `value` if every column was read.
    pub fn checked<T>(&self, value: T) -> Result<T, StoreError> {
        match self.failed.get() {
            None => Ok(value),
            Some(name) => Err(StoreError::Column(name)),
        }
    }
}

/// A type a column is read into, from the JS value D1 gives for it (`None`: another type).
pub trait Column: Sized {
    /// The value, if the column holds this type.
    fn read(value: &JsValue) -> Option<Self>;
    /// Stands in for a column that could not be read; the row is refused, so never returned.
    fn placeholder() -> Self;
}

impl Column for String {
    fn read(value: &JsValue) -> Option<Self> {
        value.as_string()
    }
    fn placeholder() -> Self {
        String::new()
    }
}

/// Largest integer a JS number holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

impl Column for i64 {
    // D1 gives INTEGER values as JS numbers; only a whole number in the exact range is one.
    fn read(value: &JsValue) -> Option<Self> {
        value
            .as_f64()
            .filter(|n| n.fract() == 0.0 && n.abs() <= MAX_SAFE)
            .map(|n| n as i64)
    }
    fn placeholder() -> Self {
        0
    }
}

impl Column for u64 {
    fn read(value: &JsValue) -> Option<Self> {
        i64::read(value).and_then(|n| u64::try_from(n).ok())
    }
    fn placeholder() -> Self {
        0
    }
}

impl Column for f64 {
    fn read(value: &JsValue) -> Option<Self> {
        value.as_f64()
    }
    fn placeholder() -> Self {
        0.0
    }
}

impl Column for bool {
    // D1 stores booleans as 0/1; read as `bool_from_int` reads them: anything else is false.
    fn read(value: &JsValue) -> Option<Self> {
        Some(
            value
                .as_bool()
                .unwrap_or_else(|| i64::read(value).is_some_and(|n| n != 0)),
        )
    }
    fn placeholder() -> Self {
        false
    }
}

impl<T: Column> Column for Option<T> {
    fn read(value: &JsValue) -> Option<Self> {
        if value.is_null() || value.is_undefined() {
            Some(None)
        } else {
            T::read(value).map(Some)
        }
    }
    fn placeholder() -> Self {
        None
    }
}

// Enums stored as their snake_case name, read by their own `Deserialize` from the bare string.
macro_rules! name_columns {
    ($($ty:ty = $placeholder:expr),*) => {$(
        impl Column for $ty {
            fn read(value: &JsValue) -> Option<Self> {
                use serde::de::IntoDeserializer;
                use serde::Deserialize;
                let name = value.as_string()?;
                let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
                    name.as_str().into_deserializer();
                Self::deserialize(de).ok()
            }
            fn placeholder() -> Self {
                $placeholder
            }
        }
    )*};
}

name_columns!(
    CallStatus = CallStatus::Scheduled,
    CallProvider = CallProvider::Bland,
    Direction = Direction::Inbound,
    Role = Role::Viewer
);

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

        impl Column for $id {
            fn read(value: &JsValue) -> Option<Self> {
                value.as_string().map(<$id>::from)
            }
            fn placeholder() -> Self {
                <$id>::from(String::new())
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
pub async fn all<T: FromRow>(
    db: &D1Database,
    sql: &str,
    args: &[&dyn Arg],
) -> Result<Vec<T>, StoreError> {
    let result = settle(stmt(db, sql, args)?.inner().all()).await?;
    rows(&result.unchecked_into())
}

/// The first row of a query, if any.
pub async fn first<T: FromRow>(
    db: &D1Database,
    sql: &str,
    args: &[&dyn Arg],
) -> Result<Option<T>, StoreError> {
    Ok(all(db, sql, args).await?.into_iter().next())
}

row! {
    /// An `id` column.
    pub struct Id {
        id: String,
    }
}

/// The `id` column of every row of a query (work queues select ids, then lease each one).
pub async fn ids(db: &D1Database, sql: &str, args: &[&dyn Arg]) -> Result<Vec<String>, StoreError> {
    Ok(all::<Id>(db, sql, args)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect())
}

row! {
    /// The `at` of a `SELECT min(…) AS at`.
    pub struct Earliest {
        at: Option<i64>,
    }
}

/// The time a `SELECT min(…) AS at` query finds, if any (when a work queue is next due).
pub async fn earliest(
    db: &D1Database,
    sql: &str,
    args: &[&dyn Arg],
) -> Result<Option<i64>, StoreError> {
    Ok(first::<Earliest>(db, sql, args).await?.and_then(|e| e.at))
}

/// Runs a write and returns how many rows it changed.
pub async fn run(db: &D1Database, sql: &str, args: &[&dyn Arg]) -> Result<usize, StoreError> {
    let result = settle(stmt(db, sql, args)?.inner().run()).await?;
    changes(&result.unchecked_into())
}

/// Runs statements atomically (D1 batches are transactions); returns each one's change count.
pub async fn batch(
    db: &D1Database,
    statements: Vec<D1PreparedStatement>,
) -> Result<Vec<usize>, StoreError> {
    batch_results(db, statements)
        .await?
        .iter()
        .map(changes)
        .collect()
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
    batch_results(db, statements)
        .await?
        .iter()
        .map(|result| {
            Ok(Outcome {
                changes: changes(result)?,
                id: rows::<Id>(result)?.into_iter().next().map(|i| i.id),
            })
        })
        .collect()
}

// Statements run on the binding's own objects: worker's `D1Result` reads rows and `meta` only
// through `serde_wasm_bindgen`.
async fn batch_results(
    db: &D1Database,
    statements: Vec<D1PreparedStatement>,
) -> Result<Vec<D1Result>, StoreError> {
    let statements: Array = statements
        .iter()
        .map(|s| JsValue::from(s.inner()))
        .collect();
    let sys: &D1DatabaseSys = db.as_ref().unchecked_ref();
    let results: Array = settle(sys.batch(statements)).await?.unchecked_into();
    Ok(results.iter().map(JsCast::unchecked_into).collect())
}

/// Awaits a statement's promise; a refusal is D1's error.
async fn settle(promise: Result<Promise, JsValue>) -> Result<JsValue, StoreError> {
    Ok(JsFuture::from(promise.map_err(worker::Error::from)?)
        .await
        .map_err(worker::Error::from)?)
}

/// A result's rows.
fn rows<T: FromRow>(result: &D1Result) -> Result<Vec<T>, StoreError> {
    let Some(rows) = result.results().map_err(worker::Error::from)? else {
        return Ok(Vec::new());
    };
    rows.iter()
        .map(|object| {
            T::from_row(&Row {
                object,
                failed: Cell::new(None),
            })
        })
        .collect()
}

/// How many rows a write changed (`meta.changes`; 0 when D1 does not say).
fn changes(result: &D1Result) -> Result<usize, StoreError> {
    // As worker's reader: no `meta` is no count.
    let Ok(meta) = result.meta() else {
        return Ok(0);
    };
    let changes =
        Reflect::get(&meta, &JsValue::from_str("changes")).map_err(worker::Error::from)?;
    Ok(changes.as_f64().map_or(0, |n| n as usize))
}

/// Reads a boolean that is 0/1 (as D1 stores it) or a real boolean (as the KV caches hold it),
/// for rows also read as JSON; `Column for bool` reads a D1 row's the same way.
pub fn bool_from_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    use serde::Deserialize;
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::Number(n) => n.as_i64().unwrap_or(0) != 0,
        _ => false,
    })
}
