//! pingora-cache's `Storage` over a moka cache bounded in bytes.
//!
//! Each entry holds the cache metadata, the response header as a ready `ResponseHeader`, the
//! whole body and the URL it was stored for (for purge by URL or prefix), under the key's
//! 16-byte hash. moka weighs an entry by its byte counts and evicts within `max_size`.
//!
//! The meta is kept as pingora-cache's `CacheMeta`, header parsed, rather than in
//! `CacheMeta::serialize`'s form: a hit clones it instead of decoding the times and
//! decompressing and re-parsing the header, which was 15,000 of the 82,000 instructions a hit
//! cost with the header serialized, and 2,000 of 39,800 with only the times serialized
//! (callgrind, `benches/load/instructions`). A body is collected by the miss handler and becomes visible only when it is
//! complete, so a half-written object is never served. pingora's max-file-size tracker
//! (`set_max_file_size_bytes`) abandons an object that grows past `max_object_size` while
//! it streams in. Partial (streaming) hits are not supported: a reader waits on the cache lock
//! for the writer instead.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::cache::key::{CacheHashKey, CacheKey, HashBinary};
use pingora::cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget,
    PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheMeta, Storage};
use pingora::Result;
use prometheus::IntCounter;
use smallvec::SmallVec;
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type IndexShard = HashMap<Box<str>, SmallVec<[HashBinary; 1]>>;

pub struct Entry {
    /// Freshness, age, variance and the response header, as pingora-cache hands them over; a
    /// hit gets a copy (pingora patch 14: `CacheMeta: Clone`).
    meta: CacheMeta,
    body: Bytes,
    /// `scheme://host/path?query` the entry answers (key headers excluded).
    pub url: Box<str>,
}

/// `CacheMeta`'s own fields (times, variance), besides the header, as counted in a weight.
const META_SIZE: usize = 128;

impl Entry {
    fn new(meta: &CacheMeta, body: Bytes, url: Box<str>) -> Entry {
        let mut meta = meta.clone();
        // What the storing request's code put there is not for every later hit (and a
        // serializing storage would not keep it either).
        meta.extensions_mut().clear();
        Entry { meta, body, url }
    }

    fn weight(&self) -> u32 {
        let header: usize = self
            .meta
            .response_header()
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + FIELD_OVERHEAD)
            .sum();
        let n = META_SIZE + header + self.body.len() + 2 * self.url.len() + ENTRY_OVERHEAD;
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

type Entries = moka::sync::Cache<HashBinary, Arc<Entry>>;

/// The process's one storage (pingora-cache wants it `&'static`: [`MokaStorage::global`]);
/// the moka cache inside is replaced when `[cache]`'s size changes ([`MokaStorage::install`]),
/// and a replaced one is freed, entries and all, when the last operation that loaded it ends.
pub struct MokaStorage {
    entries: arc_swap::ArcSwapOption<Entries>,
    /// URL → the keys of its stored variants, so that invalidating a URL (RFC 9111 §4.4, after
    /// every successful unsafe request) costs O(its variants), not a scan of the store.
    /// Sharded by the URL's hash; a shard is locked only to add or take a URL's list, never
    /// across a moka call (whose eviction listener takes the same lock). Known race: when moka
    /// evicts a key for size on one thread while another thread stores the same key again,
    /// the listener can drop the new entry's index slot; that entry then misses invalidation
    /// by an unsafe request (not an admin purge by prefix, which scans) until it expires.
    index: Box<[Mutex<IndexShard>]>,
}

const INDEX_SHARDS: usize = 16;

/// What an entry costs beyond the bytes it holds, counted in its weight so that `max_size`
/// bounds the memory the cache takes: moka's node, timer and frequency-sketch records, the
/// `Arc`, the parsed header's two maps and their buckets, the index slot, and allocator
/// rounding. Measured as RSS growth per stored entry under a flood of small unique responses
/// (`tests/cache_hardening.rs::memory_stays_within_max_size_under_a_flood_of_small_responses`):
/// about 6.6 KiB for a 400-byte body with five header fields, of which the bytes counted
/// below are about 1 KiB. With it, RSS grows by about `max_size` plus 2 MiB.
pub const ENTRY_OVERHEAD: usize = 6 * 1024;
/// The same per header field (a bucket in the value map and one in the case map).
const FIELD_OVERHEAD: usize = 96;

fn shard_of(url: &str) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    (h.hash_one(url) as usize) % INDEX_SHARDS
}

/// The URL part of a brace cache key's primary (see `policy::key`): up to the first newline.
fn url_of(key: &CacheKey) -> Box<str> {
    let primary = String::from_utf8_lossy(key.primary_key());
    primary.split('\n').next().unwrap_or_default().into()
}

static GLOBAL: std::sync::OnceLock<MokaStorage> = std::sync::OnceLock::new();

impl MokaStorage {
    /// The process's storage, empty until a cache is [installed](Self::install).
    pub fn global() -> &'static MokaStorage {
        GLOBAL.get_or_init(|| MokaStorage {
            entries: arc_swap::ArcSwapOption::empty(),
            index: (0..INDEX_SHARDS).map(|_| Mutex::default()).collect(),
        })
    }

    /// An empty cache of `max_size` bytes takes the place of the one in use (if any), which
    /// is freed once the operations that loaded it end.
    pub fn install(&'static self, max_size: u64, evictions: IntCounter) {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_size)
            .weigher(|_k: &HashBinary, v: &Arc<Entry>| v.weight())
            .eviction_listener(move |k: Arc<HashBinary>, v: Arc<Entry>, cause| {
                use moka::notification::RemovalCause;
                if cause == RemovalCause::Size {
                    evictions.inc();
                }
                // A replaced entry's key stays in the store under the same URL.
                if cause != RemovalCause::Replaced {
                    self.unindex(&v.url, &k);
                }
            })
            .build();
        let old = self.entries.swap(Some(Arc::new(entries)));
        for shard in self.index.iter() {
            shard.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        drop(old);
    }

    /// The cache in use (`None` before one is installed).
    fn entries(&self) -> arc_swap::Guard<Option<Arc<Entries>>> {
        self.entries.load()
    }

    /// A weak handle on the cache in use, for tests of its release.
    #[cfg(test)]
    fn entries_weak(&self) -> std::sync::Weak<Entries> {
        Arc::downgrade(self.entries.load_full().as_ref().expect("installed"))
    }

    fn index_shard(&self, url: &str) -> std::sync::MutexGuard<'_, IndexShard> {
        // A poisoned shard only means a panic elsewhere mid-update of a list; keep using it.
        self.index[shard_of(url)]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, hash: HashBinary, entry: Entry) {
        {
            let mut shard = self.index_shard(&entry.url);
            let keys = shard.entry(entry.url.clone()).or_default();
            if !keys.contains(&hash) {
                keys.push(hash);
            }
        }
        if let Some(entries) = &*self.entries() {
            entries.insert(hash, Arc::new(entry));
        }
    }

    fn unindex(&self, url: &str, hash: &HashBinary) {
        let mut shard = self.index_shard(url);
        if let Some(keys) = shard.get_mut(url) {
            keys.retain(|k| k != hash);
            if keys.is_empty() {
                shard.remove(url);
            }
        }
    }

    /// Removes every variant stored for these URLs; returns how many.
    pub fn purge_urls<'a>(&self, urls: impl IntoIterator<Item = &'a str>) -> u64 {
        let mut n = 0;
        for url in urls {
            let keys = self.index_shard(url).remove(url).unwrap_or_default();
            let entries = self.entries();
            for k in keys {
                if entries.as_ref().is_some_and(|e| e.remove(&k).is_some()) {
                    n += 1;
                }
            }
        }
        n
    }

    /// Bytes held (headers, bodies and keys), after moka's pending upkeep.
    pub fn stored_bytes(&self) -> u64 {
        self.entries().as_ref().map_or(0, |e| {
            e.run_pending_tasks();
            e.weighted_size()
        })
    }

    pub fn entry_count(&self) -> u64 {
        self.entries().as_ref().map_or(0, |e| {
            e.run_pending_tasks();
            e.entry_count()
        })
    }

    /// Removes every entry (every variant) whose URL satisfies `matches`; returns how many.
    pub fn purge_where(&self, matches: impl Fn(&str) -> bool) -> u64 {
        let Some(entries) = &*self.entries() else {
            return 0;
        };
        let keys: Vec<Arc<HashBinary>> = entries
            .iter()
            .filter(|(_, e)| matches(&e.url))
            .map(|(k, _)| k)
            .collect();
        for k in &keys {
            entries.invalidate(k.as_ref());
        }
        keys.len() as u64
    }

    pub fn clear(&self) -> u64 {
        let n = self.entry_count();
        if let Some(e) = &*self.entries() {
            e.invalidate_all();
            e.run_pending_tasks();
        }
        n
    }
}

#[async_trait]
impl Storage for MokaStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(e) = self
            .entries()
            .as_ref()
            .and_then(|c| c.get(&key.combined_bin()))
        else {
            return Ok(None);
        };
        // pingora-cache takes ownership of the meta on a hit.
        let meta = e.meta.clone();
        let end = e.body.len();
        Ok(Some((
            meta,
            Box::new(Hit {
                body: e.body.clone(),
                done: false,
                start: 0,
                end,
            }),
        )))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        Ok(Box::new(Miss {
            storage: self,
            hash: key.combined_bin(),
            entry: Entry::new(meta, Bytes::new(), url_of(key)),
            body: BytesMut::new(),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let hash = target.key().combined_bin();
        Ok(
            match self.entries().as_ref().and_then(|e| e.remove(&hash)) {
                Some(_) => PurgeOutcome::Purged(None),
                None => PurgeOutcome::NotFound,
            },
        )
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let hash = key.combined_bin();
        let Some(old) = self.entries().as_ref().and_then(|e| e.get(&hash)) else {
            return Ok(false);
        };
        let entry = Entry::new(meta, old.body.clone(), old.url.clone());
        self.insert(hash, entry);
        Ok(true)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

struct Hit {
    body: Bytes,
    done: bool,
    start: usize,
    end: usize,
}

#[async_trait]
impl HandleHit for Hit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        Ok(Some(self.body.slice(self.start..self.end)))
    }

    async fn finish(
        self: Box<Self>,
        _s: &'static (dyn Storage + Sync),
        _k: &CacheKey,
        _t: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.body.len();
        if start >= len {
            return pingora::Error::e_explain(
                pingora::ErrorType::InternalError,
                "seek start out of range",
            );
        }
        self.start = start;
        self.end = end.map_or(len, |e| e.min(len));
        self.done = false;
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

struct Miss {
    storage: &'static MokaStorage,
    hash: HashBinary,
    /// The entry to store, its body still empty.
    entry: Entry,
    body: BytesMut,
}

#[async_trait]
impl HandleMiss for Miss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.body.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let Miss {
            storage,
            hash,
            mut entry,
            body,
        } = *self;
        entry.body = body.freeze();
        let size = entry.weight() as usize;
        storage.insert(hash, entry);
        Ok(MissFinishType::Created(size))
    }
}

#[cfg(test)]
mod tests {
    use super::MokaStorage;

    /// A changed `[cache]` size replaces the cache, and the replaced one is freed (it was
    /// leaked on every change before: issue 32).
    #[test]
    fn a_replaced_cache_is_freed() {
        let s = MokaStorage::global();
        let evictions = prometheus::IntCounter::new("e", "e").unwrap();
        s.install(1 << 20, evictions.clone());
        let first = s.entries_weak();
        s.install(2 << 20, evictions);
        assert!(
            first.upgrade().is_none(),
            "the replaced cache is still held"
        );
        assert!(s.entries_weak().upgrade().is_some());
    }
}
