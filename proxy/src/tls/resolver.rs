//! The certificate a TLS listener serves, chosen by SNI from an [`ArcSwap`]'d set that the
//! reloader replaces whole: a handshake reads the set in force without a lock, and
//! connections already open keep the certificate they were given.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::LoadedPair;

/// The certificates of one listener, the first the default.
#[derive(Debug)]
pub struct CertificateSet {
    pairs: Vec<LoadedPair>,
}

impl CertificateSet {
    /// A set of `pairs` (at least one), in order of preference.
    pub fn new(pairs: Vec<LoadedPair>) -> Self {
        assert!(
            !pairs.is_empty(),
            "a TLS listener has at least one certificate"
        );
        CertificateSet { pairs }
    }

    /// The pairs, in order.
    pub fn pairs(&self) -> &[LoadedPair] {
        &self.pairs
    }

    /// The certificate for `server_name` (see [`pick`]).
    pub fn choose(&self, server_name: Option<&str>) -> &LoadedPair {
        &self.pairs[pick(self.pairs.iter().map(|p| p.names.as_slice()), server_name)]
    }
}

/// Which of the certificates named `names` serves `server_name`: an exact name first, then a
/// wildcard one label deep, then the first (no name asked for, or one none of them has).
fn pick<'a>(names: impl Iterator<Item = &'a [String]> + Clone, server_name: Option<&str>) -> usize {
    let Some(asked) = server_name.map(|n| n.trim_end_matches('.').to_ascii_lowercase()) else {
        return 0;
    };
    let exact = names.clone().position(|ns| ns.contains(&asked));
    let wildcard = || {
        let (_, parent) = asked.split_once('.')?;
        names.clone().position(|ns| {
            ns.iter()
                .any(|n| n.strip_prefix("*.").is_some_and(|rest| rest == parent))
        })
    };
    exact.or_else(wildcard).unwrap_or(0)
}

/// A rustls certificate resolver over a replaceable [`CertificateSet`].
#[derive(Debug)]
pub struct SniResolver {
    current: ArcSwap<CertificateSet>,
}

impl SniResolver {
    /// A resolver serving `set`.
    pub fn new(set: CertificateSet) -> Self {
        SniResolver {
            current: ArcSwap::from_pointee(set),
        }
    }

    /// The set in force.
    pub fn current(&self) -> Arc<CertificateSet> {
        self.current.load_full()
    }

    /// Serves `set` to new handshakes from now on.
    pub fn replace(&self, set: CertificateSet) {
        self.current.store(Arc::new(set));
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.current.load();
        Some(set.choose(hello.server_name()).certified.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_chooses_exact_then_wildcard_then_the_first() {
        let sets: Vec<Vec<String>> = [
            vec!["a.test"],
            vec!["b.test", "www.b.test"],
            vec!["*.c.test"],
        ]
        .iter()
        .map(|ns| ns.iter().map(|n| n.to_string()).collect())
        .collect();
        let choose = |name| pick(sets.iter().map(Vec::as_slice), name);
        assert_eq!(choose(None), 0);
        assert_eq!(choose(Some("B.TEST")), 1);
        assert_eq!(choose(Some("www.b.test.")), 1);
        assert_eq!(choose(Some("x.c.test")), 2);
        assert_eq!(choose(Some("y.x.c.test")), 0);
        assert_eq!(choose(Some("elsewhere.test")), 0);
    }
}
