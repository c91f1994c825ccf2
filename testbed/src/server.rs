//! A running testbed: the listener, one hyper HTTP/1 connection task per client, and an orderly
//! stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::TestbedError;
use crate::notify::{NotificationStats, Notifier};
use crate::store::Store;
use crate::Build;

/// How long [`Testbed::shutdown`] lets in-flight requests finish before it cuts them off.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Longest wait for a request's headers on an open connection.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections the kernel holds before they are accepted. The default of 128 overflows when a
/// load test opens a few hundred connections at once, and each overflow costs the client a
/// one-second SYN retransmission, which would be blamed on the build under test.
const ACCEPT_BACKLOG: u32 = 1024;

/// Name of the database file inside a fresh temporary directory.
const TEMP_DB_NAME: &str = "testbed.sqlite";

/// A running booking API of one build, serving on [`Testbed::addr`].
///
/// Dropping it stops the server at once (open connections are cut); [`Testbed::shutdown`] stops
/// it in order. A temporary database is removed when the testbed is dropped.
pub struct Testbed {
    /// The address it listens on (with the port chosen when 0 was asked for).
    pub addr: SocketAddr,
    build: Build,
    db: PathBuf,
    notifier: Arc<Notifier>,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    drainer: Option<JoinHandle<()>>,
    // Last: removed after everything that uses the database has stopped.
    _temp_dir: Option<tempfile::TempDir>,
}

impl Testbed {
    /// Starts `build` on `listen` (port 0 for a free one) with the database at `db`, created and
    /// seeded if it is new or empty, kept as it is otherwise; with `None`, on a fresh temporary
    /// database removed on drop.
    ///
    /// Fails when the database belongs to the other build or is not a testbed's, or when the
    /// address cannot be bound.
    pub async fn start(
        build: Build,
        listen: SocketAddr,
        db: Option<PathBuf>,
    ) -> Result<Testbed, TestbedError> {
        let (temp_dir, db) = match db {
            Some(path) => (None, path),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("twinpeak-testbed-")
                    .tempdir()
                    .map_err(TestbedError::TempDir)?;
                let path = dir.path().join(TEMP_DB_NAME);
                (Some(dir), path)
            }
        };
        let (stop, stopped) = watch::channel(false);
        let (notifier, drainer) = match build {
            Build::Legacy => (Notifier::inline(), None),
            Build::Rebuilt => {
                let (notifier, task) = Notifier::queued(stopped.clone());
                (notifier, Some(task))
            }
        };
        let notifier = Arc::new(notifier);
        let opened = {
            let (db, notifier) = (db.clone(), Arc::clone(&notifier));
            tokio::task::spawn_blocking(move || Store::open(&db, build, notifier)).await
        };
        let store = match opened {
            Ok(Ok(store)) => Arc::new(store),
            Ok(Err(e)) => {
                let _ = stop.send(true);
                return Err(e);
            }
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => return Err(TestbedError::Interrupted),
        };
        let listener = match bind(listen) {
            Ok(listener) => listener,
            Err(source) => {
                let _ = stop.send(true);
                return Err(TestbedError::Bind {
                    addr: listen,
                    source,
                });
            }
        };
        let addr = listener.local_addr().map_err(|source| TestbedError::Bind {
            addr: listen,
            source,
        })?;
        let server = tokio::spawn(serve(listener, store, stopped));
        log::info!(
            "testbed {build} listening on http://{addr} (database {})",
            db.display()
        );
        Ok(Testbed {
            addr,
            build,
            db,
            notifier,
            stop,
            server: Some(server),
            drainer,
            _temp_dir: temp_dir,
        })
    }

    /// The base URL, `http://ADDR`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The build it serves.
    pub fn build(&self) -> Build {
        self.build
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.db
    }

    /// Notifications sent, queued and dropped so far.
    pub fn notifications(&self) -> NotificationStats {
        self.notifier.stats()
    }

    /// Stops accepting connections, lets requests in flight finish (for at most
    /// [`SHUTDOWN_GRACE`]), sends the notifications still queued (for at most a second), and
    /// returns once all of it has stopped.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        if let Some(drainer) = self.drainer.take() {
            let _ = drainer.await;
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(drainer) = self.drainer.take() {
            drainer.abort();
        }
    }
}

/// Listens on `addr` with room for [`ACCEPT_BACKLOG`] connections not yet accepted.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Accepts connections until `stop`, then waits for them to finish within the grace period.
async fn serve(listener: TcpListener, store: Arc<Store>, mut stop: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                log::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let store = Arc::clone(&store);
        let service = service_fn(move |request| {
            let store = Arc::clone(&store);
            async move { Ok::<_, std::convert::Infallible>(crate::api::handle(store, request).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("connection ended: {e}");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        log::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; closing their connections");
    }
    connections.shutdown().await;
}
