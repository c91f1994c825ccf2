//! Which requests are mirrored: a share of traffic, drawn at random or consistently by a key so
//! that one user is always in or always out.

use http::HeaderMap;

use crate::units::{Percent, SampleKey};

/// Decides whether a request falls within a percentage of traffic.
#[derive(Debug, Clone)]
pub struct Sampler {
    percent: Percent,
    key: SampleKey,
}

impl Sampler {
    /// A sampler taking `percent` of traffic, keyed by `key`.
    pub fn new(percent: Percent, key: SampleKey) -> Self {
        Sampler { percent, key }
    }

    /// True when the share is zero: no request is included.
    pub fn samples_nothing(&self) -> bool {
        self.percent.fraction() <= 0.0
    }

    /// Whether this request is in the sample. With a key, the same key value always gives the
    /// same answer (for a given percentage, and across proxies); a request without the key is
    /// drawn at random.
    pub fn includes(&self, headers: &HeaderMap) -> bool {
        let fraction = self.percent.fraction();
        if fraction <= 0.0 {
            return false;
        }
        if fraction >= 1.0 {
            return true;
        }
        let point = match key_value(&self.key, headers) {
            Some(value) => unit_interval(stable_hash(value)),
            None => rand::random::<f64>(),
        };
        point < fraction
    }
}

/// The bytes of the sampling key in a request, if it carries one.
pub fn key_value<'a>(key: &SampleKey, headers: &'a HeaderMap) -> Option<&'a [u8]> {
    match key {
        SampleKey::Random => None,
        SampleKey::Header(name) => headers
            .get(name.as_str())
            .map(|v| v.as_bytes())
            .filter(|v| !v.is_empty()),
        SampleKey::Cookie(name) => cookie_value(headers, name),
    }
}

/// The value of cookie `name` from the request's `Cookie` headers.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|h| h.as_bytes().split(|b| *b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
        .filter(|v| !v.is_empty())
}

/// A hash that is the same on every machine and release (FNV-1a, then a SplitMix64 finaliser
/// to spread short keys over the whole range).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    salted_hash(b"", bytes)
}

/// [`stable_hash`] of `salt` followed by `bytes`, without joining them. Two decisions keyed by
/// the same value but hashed with different salts are independent of each other (the canary
/// split and the mirror sample, for one).
pub fn salted_hash(salt: &[u8], bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.iter().chain(bytes) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Maps a hash to `[0, 1)` using its top 53 bits.
pub fn unit_interval(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// A header map of `(name, value)` pairs, for tests.
#[cfg(test)]
pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(*k, v.parse().unwrap());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_hundred_are_exact() {
        let none = Sampler::new(Percent::new(0.0).unwrap(), SampleKey::Random);
        let all = Sampler::new(Percent::new(100.0).unwrap(), SampleKey::Random);
        let h = HeaderMap::new();
        assert!((0..1000).all(|_| !none.includes(&h)));
        assert!((0..1000).all(|_| all.includes(&h)));
    }

    #[test]
    fn keyed_sampling_is_consistent_and_close_to_the_share() {
        let s = Sampler::new(
            Percent::new(30.0).unwrap(),
            SampleKey::Header("x-user-id".into()),
        );
        let mut inside = 0;
        for user in 0..20_000 {
            let h = headers(&[("x-user-id", &format!("user-{user}"))]);
            let first = s.includes(&h);
            assert!((0..3).all(|_| s.includes(&h) == first));
            inside += usize::from(first);
        }
        // 30% of 20,000 is 6,000; the standard deviation is about 65.
        assert!((5_700..6_300).contains(&inside), "{inside}");
    }

    #[test]
    fn random_sampling_is_close_to_the_share() {
        let s = Sampler::new(Percent::new(0.5).unwrap(), SampleKey::Random);
        let h = HeaderMap::new();
        let inside = (0..200_000).filter(|_| s.includes(&h)).count();
        // 0.5% of 200,000 is 1,000; the standard deviation is about 32.
        assert!((850..1_150).contains(&inside), "{inside}");
    }

    #[test]
    fn cookie_keys_are_found_among_others() {
        let h = headers(&[("cookie", "a=1; session=abc ; z=2")]);
        assert_eq!(
            key_value(&SampleKey::Cookie("session".into()), &h),
            Some(&b"abc"[..])
        );
        assert_eq!(key_value(&SampleKey::Cookie("missing".into()), &h), None);
        let h = headers(&[("cookie", "a=1"), ("cookie", "session=x")]);
        assert_eq!(
            key_value(&SampleKey::Cookie("session".into()), &h),
            Some(&b"x"[..])
        );
    }

    #[test]
    fn stable_hash_does_not_change() {
        // Sampling decisions must agree across proxies and releases.
        assert_ne!(stable_hash(b"user-1"), stable_hash(b"user-2"));
        assert_eq!(
            format!("{:016x}", stable_hash(b"user-1")),
            "c499b5f8a721df58"
        );
        assert_eq!(salted_hash(b"", b"user-1"), stable_hash(b"user-1"));
        assert_eq!(salted_hash(b"us", b"er-1"), stable_hash(b"user-1"));
    }

    #[test]
    fn salted_samples_are_independent() {
        // Users in a 30% share under one salt fall into another 30% share about 30% of the
        // time under a different salt.
        let (mut first, mut both) = (0, 0);
        for user in 0..20_000 {
            let key = format!("user-{user}");
            let a = unit_interval(stable_hash(key.as_bytes())) < 0.3;
            let b = unit_interval(salted_hash(b"canary:", key.as_bytes())) < 0.3;
            first += usize::from(a);
            both += usize::from(a && b);
        }
        let share = both as f64 / first as f64;
        assert!((0.27..0.33).contains(&share), "{share}");
    }
}
