//! Whether a JSON document has a key that names a secret, read without building the document
//! (no values are kept): the quick answer for the many bodies with nothing to redact. The
//! same few keys come in body after body, so what was decided for a key is kept, up to a bound.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::SecretNames;

/// Whether `bytes`, a JSON document, has an object key at any depth that `names` calls
/// secret; an error when it does not parse. Decisions are looked up in, and added to, `cache`
/// when there is one.
pub fn find(
    names: &SecretNames,
    cache: Option<&mut KeyCache>,
    bytes: &[u8],
) -> Result<bool, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let decide = Decide {
        names,
        cache: RefCell::new(cache),
    };
    let found = Keys(&decide).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(found)
}

/// Whether keys are secret, as decided before: at most [`KeyCache::MAX_KEYS`] keys of at most
/// [`KeyCache::MAX_KEY_BYTES`] bytes each; keys past either bound are decided afresh each
/// time, and counted.
#[derive(Debug, Default)]
pub struct KeyCache {
    known: HashMap<Box<str>, bool, BuildHasherDefault<Fnv>>,
    uncached: u64,
}

impl KeyCache {
    /// Most keys kept.
    pub const MAX_KEYS: usize = 4096;
    /// Longest key kept, in bytes.
    pub const MAX_KEY_BYTES: usize = 64;

    /// Whether `key` is secret to `names` (the names this cache was always asked about).
    pub fn is_secret(&mut self, names: &SecretNames, key: &str) -> bool {
        if let Some(secret) = self.known.get(key) {
            return *secret;
        }
        let secret = names.is_secret(key);
        if self.known.len() < Self::MAX_KEYS && key.len() <= Self::MAX_KEY_BYTES {
            self.known.insert(key.into(), secret);
        } else {
            self.uncached += 1;
        }
        secret
    }

    /// Keys held.
    pub fn held(&self) -> usize {
        self.known.len()
    }

    /// Lookups of keys that could not be kept (past a bound).
    pub fn uncached(&self) -> u64 {
        self.uncached
    }
}

/// FNV-1a: keys are short and not chosen to collide on purpose against a bounded table, so a
/// cheap hash is enough (SipHash costs more than the decision it saves).
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The names and the cache one read decides keys with.
struct Decide<'a, 'c> {
    names: &'a SecretNames,
    cache: RefCell<Option<&'c mut KeyCache>>,
}

impl Decide<'_, '_> {
    fn is_secret(&self, key: &str) -> bool {
        match self.cache.borrow_mut().as_deref_mut() {
            Some(cache) => cache.is_secret(self.names, key),
            None => self.names.is_secret(key),
        }
    }
}

/// Reads a value, answering whether a key in it is secret.
#[derive(Clone, Copy)]
struct Keys<'d, 'a, 'c>(&'d Decide<'a, 'c>);

/// Reads an object key, answering whether it is secret.
struct Key<'d, 'a, 'c>(&'d Decide<'a, 'c>);

impl<'de> DeserializeSeed<'de> for Keys<'_, '_, '_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Keys<'_, '_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(inside) = seq.next_element_seed(self)? {
            found |= inside;
        }
        Ok(found)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(secret) = map.next_key_seed(Key(self.0))? {
            if secret || found {
                // The whole document is read all the same, to know that it parses.
                map.next_value::<IgnoredAny>()?;
                found = true;
            } else {
                found = map.next_value_seed(self)?;
            }
        }
        Ok(found)
    }
}

impl<'de> DeserializeSeed<'de> for Key<'_, '_, '_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(self.0.is_secret(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_found_at_any_depth_and_bad_documents_refused() {
        let names = SecretNames::new(["card number"]);
        for (body, secret) in [
            (
                r#"{"id": 1, "items": [{"sku": "a"}, {"name": "token"}]}"#,
                false,
            ),
            (
                r#"{"id": 1, "items": [{"sku": "a"}, {"accessToken": null}]}"#,
                true,
            ),
            (r#"[1, [2, {"x": {"cardNumber": 4}}], {"y": 3}]"#, true),
            (r#"{"\u0074oken": 1}"#, true),
            (r#""password""#, false),
        ] {
            assert_eq!(
                find(&names, None, body.as_bytes()).unwrap(),
                secret,
                "{body}"
            );
            // Asked twice, the second time from what the cache kept.
            let mut cache = KeyCache::default();
            for _ in 0..2 {
                let found = find(&names, Some(&mut cache), body.as_bytes()).unwrap();
                assert_eq!(found, secret, "{body}");
            }
        }
        for broken in [r#"{"password": "p""#, r#"{"a": 1} x"#, "{"] {
            assert!(find(&names, None, broken.as_bytes()).is_err(), "{broken}");
        }
    }

    #[test]
    fn the_cache_keeps_at_most_its_bound_and_counts_what_it_could_not_keep() {
        let names = SecretNames::new([]);
        let mut cache = KeyCache::default();
        for i in 0..KeyCache::MAX_KEYS + 10 {
            assert!(!cache.is_secret(&names, &format!("field{i}")));
        }
        assert_eq!(cache.held(), KeyCache::MAX_KEYS);
        assert_eq!(cache.uncached(), 10);
        // Past the bound the decision is still made, and still right.
        assert!(cache.is_secret(&names, "accessToken"));
        assert!(cache.is_secret(&names, &format!("{}_token", "x".repeat(80))));
        assert_eq!(cache.uncached(), 12);
    }
}
