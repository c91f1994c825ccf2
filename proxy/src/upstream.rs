//! Pingora peers for the configured upstreams, their host names resolved once, at start (as
//! nginx does), with the protocol to speak: TLS settings for `https://` urls and HTTP/2 when
//! asked for.

use pingora_core::upstreams::peer::HttpPeer;

use crate::error::{SetupError, SetupProblem};
use crate::tls::upstream::UpstreamTls;
use crate::units::UpstreamUrl;

/// How an upstream is spoken to, beyond its url.
#[derive(Debug, Clone, Copy, Default)]
pub struct Transport<'a> {
    /// HTTP/2: offered by ALPN (`h2`, then `http/1.1`) over TLS, with prior knowledge (h2c)
    /// over plaintext.
    pub http2: bool,
    /// TLS settings (`https://` only).
    pub tls: Option<&'a UpstreamTls>,
}

/// A Pingora peer for an upstream, its host name resolved now; the error names the
/// configuration `key` (`primary.url`) and says why it could not be. The host goes along as
/// TLS SNI, and is verified, for https only: a plain-HTTP peer carries no name, so the copy
/// made for every request allocates nothing.
pub fn peer(
    url: &UpstreamUrl,
    transport: Transport<'_>,
    key: &'static str,
) -> Result<HttpPeer, SetupError> {
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
    let mut peer = HttpPeer::new(address, url.tls, sni);
    if transport.http2 {
        match url.tls {
            true => peer.options.set_http_version(2, 1),
            false => peer.options.set_http_version(2, 2),
        }
    }
    if let Some(tls) = transport.tls {
        let section = key.rsplit_once('.').map_or(key, |(section, _)| section);
        let material = tls
            .load(&format!("{section}.tls"), url.tls)
            .map_err(|e| SetupError::new(key, SetupProblem::Tls(e.to_string())))?;
        tls.apply(material, &mut peer, &format!("{section} {url}"));
    }
    Ok(peer)
}
