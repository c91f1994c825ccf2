//! The proxy's listeners as Pingora services: plaintext HTTP/1.1, plaintext with h2c (a
//! service of its own, since Pingora sets h2c per service), and TLS — each TLS listener with
//! its own certificate resolver, chosen by SNI and replaced by the reloader.

use std::net::SocketAddr;
use std::sync::Arc;

use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::protocols::ALPN;
use pingora_core::server::configuration::ServerConf;
use pingora_core::services::listening::Service;
use pingora_proxy::HttpProxy;

use crate::error::{SetupError, SetupProblem};
use crate::listen::Listener;
use crate::metrics::Metrics;
use crate::service::TwinpeakProxy;
use crate::tls::certs::load_pair;
use crate::tls::metrics::TlsMetrics;
use crate::tls::reload::{CertificateWatch, WatchedListener};
use crate::tls::resolver::{CertificateSet, SniResolver};

/// A TLS listener, its certificates read.
struct TlsListener {
    address: SocketAddr,
    resolver: Arc<SniResolver>,
    http2: bool,
}

/// Every listener, sorted by the service that serves it, and the certificate reloader.
pub struct FrontDoor {
    plain: Vec<SocketAddr>,
    h2c: Vec<SocketAddr>,
    tls: Vec<TlsListener>,
    watch: Option<CertificateWatch>,
}

impl FrontDoor {
    /// Reads every TLS listener's certificates (the file was checked as it was read; a file
    /// that changed since fails here, naming it) and registers the TLS metrics when there are
    /// TLS listeners.
    pub fn open(listeners: &[Listener], metrics: &Metrics) -> Result<Self, SetupError> {
        let mut door = FrontDoor {
            plain: Vec::new(),
            h2c: Vec::new(),
            tls: Vec::new(),
            watch: None,
        };
        let mut watched = Vec::new();
        for listener in listeners {
            let Some(tls) = &listener.tls else {
                match listener.http2() {
                    true => door.h2c.push(listener.address),
                    false => door.plain.push(listener.address),
                }
                continue;
            };
            let files: Vec<_> = tls.pairs().into_iter().map(|(_, files)| files).collect();
            let pairs = files
                .iter()
                .map(|f| load_pair(&f.cert, &f.key))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|problem| {
                    SetupError::new("listen", SetupProblem::Tls(problem.to_string()))
                })?;
            let resolver = Arc::new(SniResolver::new(CertificateSet::new(pairs)));
            watched.push(WatchedListener::new(
                listener.address,
                resolver.clone(),
                files,
            ));
            door.tls.push(TlsListener {
                address: listener.address,
                resolver,
                http2: listener.http2(),
            });
        }
        if !watched.is_empty() {
            door.watch = Some(CertificateWatch::new(
                watched,
                TlsMetrics::register(metrics),
            ));
        }
        Ok(door)
    }

    /// The proxy services, each on its listeners: one for HTTP/1.1 and TLS listeners, one for
    /// plaintext listeners that accept h2c.
    pub fn services(
        &self,
        conf: &Arc<ServerConf>,
        proxy: TwinpeakProxy,
    ) -> Vec<Service<HttpProxy<TwinpeakProxy>>> {
        let mut services = Vec::new();
        if !self.h2c.is_empty() {
            let mut service = pingora_proxy::http_proxy_service_with_name(
                conf,
                proxy.clone(),
                "twinpeak proxy h2c",
            );
            let mut options = HttpServerOptions::default();
            options.h2c = true;
            if let Some(app) = service.app_logic_mut() {
                app.server_options = Some(options);
            }
            for address in &self.h2c {
                service.add_tcp(&address.to_string());
            }
            services.push(service);
        }
        if !self.plain.is_empty() || !self.tls.is_empty() {
            let mut service =
                pingora_proxy::http_proxy_service_with_name(conf, proxy, "twinpeak proxy");
            for address in &self.plain {
                service.add_tcp(&address.to_string());
            }
            for listener in &self.tls {
                service.add_tls_with_settings(
                    &listener.address.to_string(),
                    None,
                    listener.settings(),
                );
            }
            services.push(service);
        }
        services
    }

    /// The background service that reloads certificates, when there are TLS listeners.
    pub fn take_watch(&mut self) -> Option<CertificateWatch> {
        self.watch.take()
    }
}

impl TlsListener {
    /// Pingora's settings for it: TLS 1.2 and 1.3 (Pingora's choice for rustls), the
    /// certificate from the resolver, ALPN `h2` then `http/1.1` (or `http/1.1` alone).
    fn settings(&self) -> TlsSettings {
        let mut settings =
            TlsSettings::intermediate("", "").expect("settings without files to read cannot fail");
        settings.set_cert_resolver(self.resolver.clone());
        match self.http2 {
            true => settings.enable_h2(),
            false => settings.set_alpn(ALPN::H1),
        }
        settings
    }
}
