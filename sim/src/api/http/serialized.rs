//! Serialised forms of stored objects, reused across list responses (kube-apiserver caches
//! serialisations in its watch cache the same way). A list of 10,000 pods is tens of
//! megabytes of JSON: serialising it again for every list is most of a list's cost.
//!
//! Entries are keyed by the object's resourceVersion. The embedded cluster has one
//! cluster-wide counter bumped by every write, so a resourceVersion names exactly one stored
//! object version; objects served under another apiVersion (conversion) are not cached.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use serde_json::Value;

/// Past this many entries per encoding the cache starts over (stale versions are not
/// tracked one by one).
const MAX_ENTRIES: usize = 200_000;

/// The two encodings cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The object's JSON.
    Json,
    /// The object's protobuf message (no envelope: as a list item).
    Protobuf,
}

/// Cached serialisations of one API server's objects.
#[derive(Debug, Default)]
pub struct Serialized {
    entries: Mutex<HashMap<(Encoding, u64), Bytes>>,
}

impl Serialized {
    /// The cached bytes of `obj` in `encoding`, made with `make` on a miss. Objects without a
    /// numeric resourceVersion are not cached.
    pub fn get_or_make<E>(
        &self,
        encoding: Encoding,
        obj: &Value,
        make: impl FnOnce(&Value) -> Result<Vec<u8>, E>,
    ) -> Result<Bytes, E> {
        let Some(rv) = obj["metadata"]["resourceVersion"].as_str().and_then(|rv| rv.parse::<u64>().ok()) else {
            return make(obj).map(Bytes::from);
        };
        let key = (encoding, rv);
        if let Some(b) = self.lock().get(&key) {
            return Ok(b.clone());
        }
        let bytes = Bytes::from(make(obj)?);
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, bytes.clone());
        Ok(bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Encoding, u64), Bytes>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_serialisation_per_object_version() {
        let cache = Serialized::default();
        let v1 = json!({"metadata": {"resourceVersion": "7"}, "data": {"a": "1"}});
        let mut calls = 0;
        let mut make = |o: &Value| {
            calls += 1;
            serde_json::to_vec(o)
        };
        let first = cache.get_or_make(Encoding::Json, &v1, &mut make).unwrap();
        let again = cache.get_or_make(Encoding::Json, &v1, &mut make).unwrap();
        assert_eq!(first, again);
        let v2 = json!({"metadata": {"resourceVersion": "8"}, "data": {"a": "2"}});
        let second = cache.get_or_make(Encoding::Json, &v2, &mut make).unwrap();
        assert_ne!(first, second);
        cache.get_or_make(Encoding::Protobuf, &v1, &mut make).unwrap();
        assert_eq!(calls, 3, "a new version or another encoding is serialised, a known one is not");
    }
}
