//! Pages of a sorted or filtered view at any depth.
//!
//! A version never changes once written, so the order of its rows under one sort and one
//! filter is computed once (ids only: the database sorts row ids by their keys, not the rows'
//! data) and kept, bounded by `tables.order_cache_bytes`, least recently used first out. Each
//! page is then a slice of that order and a read of its rows by id: the 200,000th row of a
//! sorted view costs what the first does. Requests for an order being computed wait for it
//! instead of computing it again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, DbErr};
use sheetgpt_core::table::ColumnType;
use sheetgpt_core::version::RowId;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::db::tables::{self as store, RawRow, RowFilter};

/// Orders kept at most, whatever their size (the least recently used goes first).
const MAX_ENTRIES: usize = 1_024;
/// What an entry costs beside its ids: its key, its cell, the map's slot.
const ENTRY_OVERHEAD: usize = 256;

/// What a page is cut from: one version of one table, one sort, one set of filters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    table_id: Uuid,
    version: i32,
    /// The sort keys and filters, spelled out (filters with their SQL values).
    view: String,
}

struct Entry {
    order: Arc<OnceCell<Arc<[RowId]>>>,
    used: u64,
    /// Counted in the cache's total once the order is there.
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    bytes: usize,
    clock: u64,
}

/// The orders of sorted and filtered views read lately, shared by every request of this
/// process.
pub struct OrderCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
    built: AtomicU64,
}

impl OrderCache {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            inner: Mutex::default(),
            built: AtomicU64::new(0),
        }
    }

    /// Orders computed by this process so far.
    pub fn built(&self) -> u64 {
        self.built.load(Ordering::Relaxed)
    }

    /// Bytes the orders kept take now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves consistent data: every update is one statement.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The order for `key`: kept, being computed by another request (waited for), or computed
    /// now by `build`.
    async fn get<F>(&self, key: Key, build: F) -> Result<Arc<[RowId]>, DbErr>
    where
        F: AsyncFnOnce() -> Result<Vec<RowId>, DbErr>,
    {
        let cell = {
            let mut inner = self.lock();
            inner.clock += 1;
            let now = inner.clock;
            let entry = inner.entries.entry(key.clone()).or_insert_with(|| Entry {
                order: Arc::default(),
                used: now,
                bytes: 0,
            });
            entry.used = now;
            Arc::clone(&entry.order)
        };
        let mut built = false;
        let order = cell
            .get_or_try_init(|| async {
                built = true;
                self.built.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("sheetgpt_table_orders_built_total").increment(1);
                build().await.map(Arc::from)
            })
            .await;
        let order = match order {
            Ok(order) => Arc::clone(order),
            Err(err) => {
                // Nothing kept: the next request tries again.
                let mut inner = self.lock();
                if inner
                    .entries
                    .get(&key)
                    .is_some_and(|e| Arc::ptr_eq(&e.order, &cell))
                {
                    inner.entries.remove(&key);
                }
                return Err(err);
            }
        };
        if built {
            self.account(&key, &cell, order.len());
        }
        Ok(order)
    }

    /// Counts a new order in the total and makes room for it, least recently used first; an
    /// order larger than the whole allowance is not kept.
    fn account(&self, key: &Key, cell: &Arc<OnceCell<Arc<[RowId]>>>, len: usize) {
        let bytes = len * size_of::<RowId>() + ENTRY_OVERHEAD;
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(key) else {
            return;
        };
        if !Arc::ptr_eq(&entry.order, cell) {
            return;
        }
        if bytes > self.max_bytes {
            inner.entries.remove(key);
            return;
        }
        entry.bytes = bytes;
        inner.bytes += bytes;
        while inner.bytes > self.max_bytes || inner.entries.len() > MAX_ENTRIES {
            let oldest = inner
                .entries
                .iter()
                // Kept orders, and entries whose build was given up (its request went away)
                // that no one waits on.
                .filter(|(k, e)| {
                    *k != key
                        && (e.bytes > 0
                            || (e.order.get().is_none() && Arc::strong_count(&e.order) == 1))
                })
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            let Some(oldest) = oldest else { break };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.bytes;
            }
        }
    }
}

/// What a page of rows asks for.
pub struct View<'a> {
    pub table_id: Uuid,
    pub version: i32,
    /// Whether `version` is the table's current one (its rows are read by the live index).
    pub current: bool,
    pub sort: &'a [(String, ColumnType, bool)],
    pub filters: &'a [RowFilter],
    /// At most how many rows the view has (the table's count): whether its order can be kept.
    pub rows: u64,
}

/// Where a page starts.
pub enum Start {
    /// After the row at this position, in position order (a keyset cursor).
    After(Option<i64>),
    /// At this index of the view's rows (0-based).
    Offset(u64),
}

/// `limit + 1` rows of the view from `start`, so that the caller knows whether more follow.
pub async fn page(
    db: &impl ConnectionTrait,
    cache: &OrderCache,
    view: &View<'_>,
    start: Start,
    limit: u64,
) -> Result<Vec<RawRow>, DbErr> {
    let offset = match start {
        Start::After(after) if view.sort.is_empty() => {
            return store::page(
                db,
                view.table_id,
                view.version,
                view.current,
                view.filters,
                after,
                limit,
            )
            .await;
        }
        Start::After(_) => 0,
        Start::Offset(offset) => offset,
    };
    if view.sort.is_empty() && offset == 0 {
        return store::page(
            db,
            view.table_id,
            view.version,
            view.current,
            view.filters,
            None,
            limit,
        )
        .await;
    }
    // The first page of a sorted view is the database's top-N (no need to order every row
    // yet), and so is every page of a view whose order could not be kept.
    let too_large = usize::try_from(view.rows)
        .unwrap_or(usize::MAX)
        .saturating_mul(size_of::<RowId>())
        .saturating_add(ENTRY_OVERHEAD)
        > cache.max_bytes;
    if offset == 0 || too_large {
        return store::sorted_page(
            db,
            view.table_id,
            view.version,
            view.current,
            view.filters,
            view.sort,
            offset,
            limit,
        )
        .await;
    }
    let key = Key {
        table_id: view.table_id,
        version: view.version,
        view: format!("{:?} {:?}", view.sort, filters_key(view.filters)),
    };
    let order = cache
        .get(key, async || {
            store::order(db, view.table_id, view.version, view.filters, view.sort).await
        })
        .await?;
    let from = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(order.len());
    let to = from
        .saturating_add(usize::try_from(limit + 1).unwrap_or(usize::MAX))
        .min(order.len());
    let ids = &order[from..to];
    let mut rows = store::rows_at(db, view.table_id, view.version, false, Some(ids)).await?;
    let rank: HashMap<RowId, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    rows.sort_by_key(|r| rank.get(&r.id).copied().unwrap_or(usize::MAX));
    Ok(rows)
}

fn filters_key(filters: &[RowFilter]) -> Vec<String> {
    filters
        .iter()
        .map(|f| format!("{}:{:?}:{:?}:{:?}", f.column_id, f.ty, f.cmp, f.value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: i32) -> Key {
        Key {
            table_id: Uuid::nil(),
            version: n,
            view: String::new(),
        }
    }

    async fn get(cache: &OrderCache, n: i32, len: usize) -> Arc<[RowId]> {
        cache
            .get(key(n), async || Ok((0..len as RowId).collect()))
            .await
            .unwrap()
    }

    fn kept(cache: &OrderCache) -> Vec<i32> {
        let mut v: Vec<i32> = cache.lock().entries.keys().map(|k| k.version).collect();
        v.sort_unstable();
        v
    }

    #[tokio::test]
    async fn the_least_recently_used_order_makes_room_and_one_too_large_is_not_kept() {
        let one = 100 * size_of::<RowId>() + ENTRY_OVERHEAD;
        let cache = OrderCache::new(2 * one as u64);
        get(&cache, 1, 100).await;
        get(&cache, 2, 100).await;
        assert_eq!(cache.bytes(), 2 * one);
        get(&cache, 1, 100).await; // used again: 2 is now the oldest
        get(&cache, 3, 100).await;
        assert_eq!(kept(&cache), vec![1, 3]);
        assert_eq!(cache.bytes(), 2 * one);
        // Larger than the whole allowance: answered, not kept, nothing else evicted.
        assert_eq!(get(&cache, 4, 1_000).await.len(), 1_000);
        assert_eq!(kept(&cache), vec![1, 3]);
        assert_eq!(cache.bytes(), 2 * one);
    }

    #[tokio::test]
    async fn concurrent_requests_for_one_order_compute_it_once_and_a_failure_is_not_kept() {
        let cache = OrderCache::new(1 << 20);
        let builds = std::sync::atomic::AtomicUsize::new(0);
        let build = async || {
            builds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Ok(vec![3, 1, 2])
        };
        let (a, b) = tokio::join!(cache.get(key(1), build), cache.get(key(1), build));
        assert_eq!(&*a.unwrap(), &[3, 1, 2]);
        assert_eq!(&*b.unwrap(), &[3, 1, 2]);
        assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 1);

        let failed = cache
            .get(key(2), async || Err(DbErr::Custom("down".into())))
            .await;
        assert!(failed.is_err());
        assert_eq!(kept(&cache), vec![1]);
        assert_eq!(&*get(&cache, 2, 2).await, &[0, 1]);
    }
}
