//! Cursor paging, written once: every list is newest first by (order column, id), fetched one
//! row past the page to know whether another follows.

use crate::store::db::{self, Arg, FromRow};
use crate::store::error::StoreError;
use crate::store::tenant::Tenant;
use phone_agent_core::pagination::{split_page, Cursor};
use worker::d1::D1Database;

/// The page window a list request asks for.
pub struct Page {
    pub limit: u32,
    pub after: Option<Cursor>,
}

/// A row that can be listed: where it sits in the list order.
pub trait Listed: FromRow {
    /// The column lists are ordered by (newest first), with `id` breaking ties.
    const ORDER: &'static str = "created_at";
    /// Whether `id` is an INTEGER column (the audit log's): the cursor's id is then bound as a
    /// number, because SQLite orders every number before every string.
    const INTEGER_ID: bool = false;
    /// This row's position, for the next page's cursor.
    fn cursor(&self) -> Cursor;
}

/// Implements [`Listed`] for a row type with an `id` ordered by its `$order` field and, given
/// the tenant-scoped select and the filter columns, [`Filtered`] too: the row boilerplate of
/// every list, written once.
macro_rules! listed {
    ($row:ty, $order:ident) => {
        impl $crate::store::page::Listed for $row {
            const ORDER: &'static str = stringify!($order);
            fn cursor(&self) -> phone_agent_core::pagination::Cursor {
                phone_agent_core::pagination::Cursor {
                    created_at: self.$order,
                    id: self.id.to_string(),
                }
            }
        }
    };
    ($row:ty, $order:ident, $select:expr, [$($filter:literal),*]) => {
        $crate::store::page::listed!($row, $order);
        impl $crate::store::page::Filtered for $row {
            const SELECT: &'static str = $select;
            const FILTERS: &'static [&'static str] = &[$($filter),*];
        }
    };
}
pub(crate) use listed;

/// A tenant's resource listed by equality filters only: its rows and the columns a list may
/// match.
pub trait Filtered: Listed {
    /// `SELECT … FROM … WHERE tenant_id = ?1`.
    const SELECT: &'static str;
    /// The columns a list may be filtered on, named like the list's query parameters.
    const FILTERS: &'static [&'static str] = &[];
}

/// One page of a tenant's `T`s, keeping those whose every filter column equals `value(column)`
/// (a column without a value matches all).
pub async fn filtered<'a, T: Filtered>(
    tenant: &Tenant,
    value: impl Fn(&str) -> Option<&'a str>,
    page: &Page,
) -> Result<PageOf<T>, StoreError> {
    let mut query = T::SELECT.to_owned();
    for (i, column) in T::FILTERS.iter().enumerate() {
        let n = i + 2;
        query.push_str(&format!(" AND (?{n} IS NULL OR {column} = ?{n})"));
    }
    let values: Vec<Option<&str>> = T::FILTERS.iter().map(|c| value(c)).collect();
    let args: Vec<&dyn Arg> = values.iter().map(|v| v as &dyn Arg).collect();
    list(tenant, &query, &args, page).await
}

/// One page of rows and the cursor of the next page, if there is one.
pub struct PageOf<T> {
    pub rows: Vec<T>,
    pub next_cursor: Option<String>,
}

/// One page of a tenant's rows. `query` is `SELECT … FROM … WHERE tenant_id = ?1 …` with its
/// own filters bound as `?2…` from `filters` (all numbered); the cursor and limit come after.
pub async fn list<T: Listed>(
    tenant: &Tenant,
    query: &str,
    filters: &[&dyn Arg],
    page: &Page,
) -> Result<PageOf<T>, StoreError> {
    let mut args: Vec<&dyn Arg> = vec![tenant.id()];
    args.extend_from_slice(filters);
    debug_assert!(query.contains("tenant_id = ?1"), "unscoped list: {query}");
    list_in(tenant.db(), query, &args, page).await
}

/// One page of rows across tenants (the bootstrap key's tenant list). `query` has a `WHERE`
/// and binds `filters` as `?1…`.
pub(in crate::store) async fn list_in<T: Listed>(
    db: &D1Database,
    query: &str,
    filters: &[&dyn Arg],
    page: &Page,
) -> Result<PageOf<T>, StoreError> {
    let n = filters.len();
    let order = T::ORDER;
    let sql = format!(
        "{query} AND ({order}, id) < (?{}, ?{}) ORDER BY {order} DESC, id DESC LIMIT ?{}",
        n + 1,
        n + 2,
        n + 3
    );
    // Without a cursor the position is past every row.
    let at = page.after.as_ref().map_or(i64::MAX, |c| c.created_at);
    let after = page.after.as_ref().map_or("", |c| c.id.as_str());
    let after_number = after.parse::<i64>().unwrap_or(i64::MAX);
    let after: &dyn Arg = if T::INTEGER_ID { &after_number } else { &after };
    let fetch = i64::from(page.limit) + 1;
    let mut args = filters.to_vec();
    args.extend_from_slice(&[&at as &dyn Arg, after, &fetch]);
    let rows: Vec<T> = db::all(db, &sql, &args).await?;
    let (rows, next_cursor) = split_page(rows, page.limit, T::cursor);
    Ok(PageOf { rows, next_cursor })
}
