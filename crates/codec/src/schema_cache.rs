//! The writer schemas a registry-backed source has met, by id (a Confluent
//! schema id, a Glue schema version UUID): bounded, and cheap to attack.
//!
//! Every payload names a schema id, so a producer (or an attacker) can name as
//! many ids as it likes. The cache keeps at most `capacity` ids, evicting the
//! least recently used; and lookups that come back "unknown id" draw on a
//! token bucket, so a flood of made-up ids costs a bounded number of registry
//! calls (each up to the registry timeout): once the bucket is empty, ids not
//! in the cache are rejected as unknown without asking until it refills.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::avro::RegistryError;
use crate::decoder::DecodeError;
use crate::rejection::{Fault, Reason};

/// Ids kept at most.
pub(crate) const SCHEMA_CACHE_CAPACITY: usize = 10_000;
/// Unknown-id lookups allowed in a burst, and refilled per second.
const UNKNOWN_LOOKUP_BURST: f64 = 100.0;
const UNKNOWN_LOOKUPS_PER_SECOND: f64 = 10.0;

/// How long an id the registry did not know stays unknown before it is asked again.
const UNKNOWN_ID_RETRY: Duration = Duration::from_secs(60);

/// A least-recently-used map from schema id to what is known of it.
#[derive(Debug)]
pub(crate) struct SchemaCache<V> {
    entries: HashMap<u128, (V, u64)>,
    by_use: BTreeMap<u64, u128>,
    clock: u64,
    capacity: usize,
    unknown_lookups: TokenBucket,
}

impl<V: Clone> SchemaCache<V> {
    pub(crate) fn new(capacity: usize) -> SchemaCache<V> {
        SchemaCache {
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            clock: 0,
            capacity: capacity.max(1),
            unknown_lookups: TokenBucket::new(UNKNOWN_LOOKUP_BURST, UNKNOWN_LOOKUPS_PER_SECOND),
        }
    }

    /// What is known of `id`, marking it used.
    pub(crate) fn get(&mut self, id: u128) -> Option<V> {
        self.clock += 1;
        let (value, used) = self.entries.get_mut(&id)?;
        self.by_use.remove(used);
        *used = self.clock;
        self.by_use.insert(self.clock, id);
        Some(value.clone())
    }

    /// Remembers `value` for `id`, evicting the least recently used id when full.
    pub(crate) fn insert(&mut self, id: u128, value: V) {
        self.clock += 1;
        if let Some((_, used)) = self.entries.insert(id, (value, self.clock)) {
            self.by_use.remove(&used);
        }
        self.by_use.insert(self.clock, id);
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.by_use.pop_first() else { break };
            self.entries.remove(&oldest);
        }
    }

    /// Whether an id not in the cache may be looked up now.
    pub(crate) fn may_look_up(&mut self) -> bool {
        self.unknown_lookups.available()
    }

    /// A lookup came back "unknown id": it costs a token.
    pub(crate) fn looked_up_unknown(&mut self) {
        self.unknown_lookups.take();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// What is known about a schema id.
#[derive(Debug)]
pub(crate) enum Cached<T> {
    /// Compiled for this source.
    Ready(Arc<T>),
    /// Known, but its records are rejected for this reason.
    Refused(Reason),
    /// The registry did not know it, when last asked.
    Unknown(Instant),
}

impl<T> Clone for Cached<T> {
    fn clone(&self) -> Self {
        match self {
            Cached::Ready(schema) => Cached::Ready(Arc::clone(schema)),
            Cached::Refused(reason) => Cached::Refused(reason.clone()),
            Cached::Unknown(since) => Cached::Unknown(*since),
        }
    }
}

/// What a registry said of an id: `None` when it does not know it; else the
/// schema compiled for the source, or why its records are rejected.
pub(crate) type Fetched<T> = Option<Result<T, Reason>>;

impl<T> SchemaCache<Cached<T>> {
    /// The schema for `id`: from the cache, else `fetch`ed (unless the flood
    /// guard says not to ask). `unknown` is the reason an unknown id rejects
    /// its record with; the outer error means "retry later".
    pub(crate) fn schema(
        &mut self,
        id: u128,
        unknown: impl Fn() -> Reason,
        fetch: impl FnOnce() -> Result<Fetched<T>, RegistryError>,
    ) -> Result<Result<Arc<T>, Box<Fault>>, DecodeError> {
        let cached = match self.get(id) {
            Some(Cached::Unknown(since)) if since.elapsed() >= UNKNOWN_ID_RETRY => None,
            other => other,
        };
        let entry = match cached {
            Some(entry) => entry,
            // Too many made-up ids of late: this one is not worth a registry call.
            None if !self.may_look_up() => return Ok(Err(Fault::record(unknown()))),
            None => {
                let entry = match fetch() {
                    Ok(Some(Ok(schema))) => Cached::Ready(Arc::new(schema)),
                    Ok(Some(Err(reason))) => Cached::Refused(reason),
                    Ok(None) => {
                        self.looked_up_unknown();
                        Cached::Unknown(Instant::now())
                    }
                    Err(RegistryError::BadAnswer(why)) => Cached::Refused(Reason::SchemaMismatch(Arc::from(why))),
                    Err(e) => return Err(DecodeError::RegistryUnavailable(e.to_string())),
                };
                self.insert(id, entry.clone());
                entry
            }
        };
        Ok(match entry {
            Cached::Ready(schema) => Ok(schema),
            Cached::Refused(reason) => Err(Fault::record(reason)),
            Cached::Unknown(_) => Err(Fault::record(unknown())),
        })
    }
}

/// One decoder's writer schemas: the cache, and the schema the last record
/// used at hand (consecutive records nearly always share it, and the cache's
/// LRU bookkeeping is not free per record).
#[derive(Debug)]
pub(crate) struct WriterSchemas<T> {
    cache: SchemaCache<Cached<T>>,
    last: Option<(u128, Arc<T>)>,
}

impl<T> WriterSchemas<T> {
    pub(crate) fn new() -> WriterSchemas<T> {
        WriterSchemas { cache: SchemaCache::new(SCHEMA_CACHE_CAPACITY), last: None }
    }

    /// The schema for `id` ([`SchemaCache::schema`], with the last one used first).
    pub(crate) fn get(
        &mut self,
        id: u128,
        unknown: impl Fn() -> Reason,
        fetch: impl FnOnce() -> Result<Fetched<T>, RegistryError>,
    ) -> Result<Result<&T, Box<Fault>>, DecodeError> {
        if self.last.as_ref().is_none_or(|(last, _)| *last != id) {
            match self.cache.schema(id, &unknown, fetch)? {
                Ok(schema) => self.last = Some((id, schema)),
                Err(fault) => return Ok(Err(fault)),
            }
        }
        Ok(match &self.last {
            Some((_, schema)) => Ok(schema),
            None => Err(Fault::record(unknown())),
        })
    }
}

/// Tokens refilled at a steady rate up to a burst.
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    refilled: Instant,
}

impl TokenBucket {
    fn new(burst: f64, per_second: f64) -> TokenBucket {
        TokenBucket { tokens: burst, burst, per_second, refilled: Instant::now() }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.refilled).min(Duration::from_secs(3600));
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst);
        self.refilled = now;
    }

    fn available(&mut self) -> bool {
        self.refill();
        self.tokens >= 1.0
    }

    fn take(&mut self) {
        self.refill();
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_at_its_bound_and_keeps_what_is_used() {
        let mut cache = SchemaCache::new(SCHEMA_CACHE_CAPACITY);
        cache.insert(1, "hot");
        for id in 2..100_002 {
            cache.insert(id, "unknown");
            if id % 1000 == 0 {
                assert_eq!(cache.get(1), Some("hot"), "a schema in use is never the one evicted");
            }
        }
        assert_eq!(cache.len(), SCHEMA_CACHE_CAPACITY);
        assert_eq!(cache.entries.len(), cache.by_use.len());
        assert_eq!(cache.get(2), None, "the oldest unused ids went first");
        assert_eq!(cache.get(100_001), Some("unknown"));
    }

    #[test]
    fn unknown_lookups_are_rate_limited() {
        let mut cache: SchemaCache<()> = SchemaCache::new(10);
        let mut allowed = 0;
        for _ in 0..1_000 {
            if cache.may_look_up() {
                allowed += 1;
                cache.looked_up_unknown();
            }
        }
        // The burst, plus what refilled while the loop ran (a few at most).
        assert!((100..=110).contains(&allowed), "{allowed}");
    }
}
