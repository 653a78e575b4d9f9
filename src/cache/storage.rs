//! pingora-cache's `Storage` over a moka cache bounded in bytes.
//!
//! Each entry holds the serialized `CacheMeta`, the whole body and the URL it was stored for
//! (for purge by URL or prefix). moka weighs an entry by those byte counts and evicts within
//! `max_size`. A body is collected by the miss handler and becomes visible only when it is
//! complete, so a half-written object is never served. pingora's max-file-size tracker
//! (`set_max_file_size_bytes`) abandons an object that grows past `max_object_size` while
//! it streams in. Partial (streaming) hits are not supported: a reader waits on the cache lock
//! for the writer instead.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::cache::key::{CacheHashKey, CacheKey};
use pingora::cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget,
    PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheMeta, Storage};
use pingora::Result;
use prometheus::IntCounter;
use std::any::Any;
use std::sync::Arc;

pub struct Entry {
    meta: (Vec<u8>, Vec<u8>),
    body: Bytes,
    /// `scheme://host/path?query` the entry answers (key headers excluded).
    pub url: Box<str>,
}

impl Entry {
    fn weight(&self) -> u32 {
        let n = self.meta.0.len() + self.meta.1.len() + self.body.len() + self.url.len() + 64;
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

pub struct MokaStorage {
    entries: moka::sync::Cache<String, Arc<Entry>>,
}

/// The URL part of a brace cache key's primary (see `policy::key`): up to the first newline.
fn url_of(key: &CacheKey) -> Box<str> {
    let primary = String::from_utf8_lossy(key.primary_key());
    primary.split('\n').next().unwrap_or_default().into()
}

impl MokaStorage {
    pub fn new(max_size: u64, evictions: IntCounter) -> MokaStorage {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_size)
            .weigher(|_k: &String, v: &Arc<Entry>| v.weight())
            .eviction_listener(move |_k, _v, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    evictions.inc();
                }
            })
            .build();
        MokaStorage { entries }
    }

    /// Bytes held (headers, bodies and keys), after moka's pending upkeep.
    pub fn stored_bytes(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Removes every entry (every variant) whose URL satisfies `matches`; returns how many.
    pub fn purge_where(&self, matches: impl Fn(&str) -> bool) -> u64 {
        let keys: Vec<Arc<String>> = self
            .entries
            .iter()
            .filter(|(_, e)| matches(&e.url))
            .map(|(k, _)| k)
            .collect();
        for k in &keys {
            self.entries.invalidate(k.as_str());
        }
        keys.len() as u64
    }

    pub fn clear(&self) -> u64 {
        let n = self.entry_count();
        self.entries.invalidate_all();
        self.entries.run_pending_tasks();
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
        let Some(e) = self.entries.get(&key.combined()) else {
            return Ok(None);
        };
        let meta = CacheMeta::deserialize(&e.meta.0, &e.meta.1)?;
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
            hash: key.combined(),
            url: url_of(key),
            meta: meta.serialize()?,
            body: BytesMut::new(),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let hash = target.key().combined();
        Ok(match self.entries.remove(&hash) {
            Some(_) => PurgeOutcome::Purged(None),
            None => PurgeOutcome::NotFound,
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let hash = key.combined();
        let Some(old) = self.entries.get(&hash) else {
            return Ok(false);
        };
        let entry = Entry {
            meta: meta.serialize()?,
            body: old.body.clone(),
            url: old.url.clone(),
        };
        self.entries.insert(hash, Arc::new(entry));
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
    hash: String,
    url: Box<str>,
    meta: (Vec<u8>, Vec<u8>),
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
            url,
            meta,
            body,
        } = *self;
        let entry = Entry {
            meta,
            body: body.freeze(),
            url,
        };
        let size = entry.weight() as usize;
        storage.entries.insert(hash, Arc::new(entry));
        Ok(MissFinishType::Created(size))
    }
}
