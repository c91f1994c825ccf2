//! Whether a JSON document has a key that names a secret, read without building the document
//! (no values are kept): the quick answer for the many bodies with nothing to redact.

use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::SecretNames;

/// Whether `bytes`, a JSON document, has an object key at any depth that `names` calls
/// secret; an error when it does not parse.
pub fn find(names: &SecretNames, bytes: &[u8]) -> Result<bool, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let found = Keys(names).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(found)
}

/// Reads a value, answering whether a key in it is secret.
#[derive(Clone, Copy)]
struct Keys<'a>(&'a SecretNames);

/// Reads an object key, answering whether it is secret.
struct Key<'a>(&'a SecretNames);

impl<'de> DeserializeSeed<'de> for Keys<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Keys<'_> {
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

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
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
            assert_eq!(find(&names, body.as_bytes()).unwrap(), secret, "{body}");
        }
        for broken in [r#"{"password": "p""#, r#"{"a": 1} x"#, "{"] {
            assert!(find(&names, broken.as_bytes()).is_err(), "{broken}");
        }
    }
}
