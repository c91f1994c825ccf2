//! Pingora peers for the configured upstreams, their host names resolved once, at start (as
//! nginx does).

use pingora_core::upstreams::peer::HttpPeer;

use crate::error::{SetupError, SetupProblem};
use crate::units::UpstreamUrl;

/// A Pingora peer for an upstream, its host name resolved now; the error names the
/// configuration `key` and says why it could not be. The host goes along as TLS SNI for https
/// only: a plain-HTTP peer carries no name, so the copy made for every request allocates
/// nothing.
pub fn peer(url: &UpstreamUrl, key: &'static str) -> Result<HttpPeer, SetupError> {
    let authority = url.authority();
    let address = std::net::ToSocketAddrs::to_socket_addrs(&authority)
        .map_err(|error| {
            SetupError::new(
                key,
                SetupProblem::Unresolved {
                    authority: authority.clone(),
                    error,
                },
            )
        })?
        .next()
        .ok_or_else(|| {
            SetupError::new(
                key,
                SetupProblem::NoAddress {
                    authority: authority.clone(),
                },
            )
        })?;
    let sni = if url.tls {
        url.host.clone()
    } else {
        String::new()
    };
    Ok(HttpPeer::new(address, url.tls, sni))
}
