//! Assembles the Pingora server from a configuration: the proxy service on its listeners, the
//! admin service, the pair worker, and the canary judge when a canary is configured.

use std::sync::Arc;

use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server};
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;

use crate::access_log::AccessLog;
use crate::admin::{Admin, AdminApp, ListenerProbe, MetricsListener};
use crate::budget::ByteBudget;
use crate::canary::fleet::FleetService;
use crate::canary::{Canary, Fleet, JudgeService};
use crate::comparison::{Comparator, PairWorker};
use crate::config::{Config, LoadedConfig};
use crate::drain::{DrainService, ExitFlush};
use crate::error::{SetupError, SetupProblem, StartError};
use crate::frontdoor::FrontDoor;
use crate::mirror::{pair_queue, Mirror};
use crate::notify::{notifier, DiffSources};
use crate::record::Recorder;
use crate::reload::{LiveParts, ReloadService, Reloader};
use crate::routes::RouteTable;
use crate::service::TwinpeakProxy;
use crate::state::live::{FlushService, Live, Sources};
use crate::stats::Stats;
use crate::upgrade::{self, HandOver, HandedOver, Start, UpgradeSignals};

/// The server, ready to run, and what it writes once more when it has stopped: the recorder's
/// queue and the state learned since the last flush.
pub struct Assembled {
    /// Every service, wired together.
    server: Server,
    flush: Arc<ExitFlush>,
    hand_over: Arc<HandOver>,
}

impl Assembled {
    /// Runs the server until SIGINT, SIGTERM or SIGQUIT (the sockets handed over to a new
    /// process), then writes the requests recorded and the state learned since the last
    /// flush (unless the drain did so as it exited).
    pub fn run(self) {
        self.server.run(RunArgs {
            shutdown_signal: Box::new(UpgradeSignals(self.hand_over)),
        });
        self.flush.run();
    }
}

/// Builds the server for a configuration, ready to run. Fails when an address to listen on is
/// taken (or, upgrading, when no proxy runs to take them from), an upstream does not resolve,
/// or the diff corpus cannot be opened.
pub fn build(loaded: LoadedConfig, start: Start) -> Result<Assembled, StartError> {
    let file = loaded.path.clone();
    assemble(loaded, start).map_err(|setup| StartError { file, setup })
}

/// The server's services, wired together.
fn assemble(loaded: LoadedConfig, start: Start) -> Result<Assembled, SetupError> {
    let config = &loaded.config;
    match start {
        Start::Fresh => check_listen_addresses(config)?,
        Start::Upgrade => {
            upgrade::check_running(config)?;
            upgrade::check_addresses(config)?;
            upgrade::prepare_socket_dir(config)?;
        }
    }
    let routes = Arc::new(RouteTable::new(&config.routes));
    let stats = Arc::new(Stats::new(&routes, config.threads, config.canary.is_some()));
    let budget = ByteBudget::new(config.mirror.max_buffered_bytes.0 as usize);
    let comparator = Comparator::new(&config.diff, routes.clone(), stats.clone(), budget.clone())
        .map_err(|error| {
        let dir = config.diff.corpus.clone().unwrap_or_default();
        SetupError::new("diff.corpus", SetupProblem::Corpus { dir, error })
    })?;
    let comparator = Arc::new(comparator);
    let canary = match &config.canary {
        Some(canary) => Some(Arc::new(Canary::new(
            canary,
            config.shadow.as_ref().map(|s| &s.url),
            comparator.store().clone(),
            stats.clone(),
            config.threads,
        )?)),
        None => None,
    };
    let (pairs, intake) = pair_queue(config.diff.queue, stats.clone());
    let worker = PairWorker::new(intake, stats.clone(), comparator.clone());
    let mirror = Arc::new(Mirror::new(config, stats.clone(), pairs, budget)?);
    let recorder = Recorder::start(config, &routes, stats.metrics(), start)?;
    let access_log = AccessLog::start(config, &routes, stats.metrics())?;
    let handed_over = HandedOver::default();
    let proxy = TwinpeakProxy::new(
        &config.primary,
        routes.clone(),
        stats.clone(),
        mirror.clone(),
        canary.clone(),
    )?
    .with_recorder(recorder.clone())
    .with_access_log(access_log.clone())
    .with_hand_over(handed_over.clone());
    let mut front_door = FrontDoor::open(&config.listen, stats.metrics())?;

    // Upgrading, this waits for the sockets; what could fail is done by then (the old proxy
    // stops once it has sent them), and the running proxy has written its state, which the
    // store, opened after it, takes up.
    let state_error = |e| SetupError::new("state", SetupProblem::State(Box::new(e)));
    if start == Start::Upgrade {
        Live::probe(&config.state, &loaded.path).map_err(state_error)?;
    }
    let mut server = pingora_server(config, canary.is_some(), start);
    if let Some(recorder) = recorder.as_ref().filter(|_| start == Start::Upgrade) {
        recorder.taken_over();
    }
    let sources = Sources {
        routes: routes.clone(),
        stats: stats.clone(),
        diffs: comparator.store().clone(),
    };
    let (state, fleet) = match Live::open(&config.state, &loaded.path, sources, canary.is_some())
        .map_err(state_error)?
    {
        Some((live, control)) => {
            let fleet = match (&canary, control) {
                (Some(canary), Some(control)) => Some(Arc::new(
                    Fleet::bootstrap(canary.clone(), control).map_err(state_error)?,
                )),
                _ => None,
            };
            (Some(Arc::new(live)), fleet)
        }
        None => (None, None),
    };
    let proxy_services = front_door.services(&server.configuration, proxy);

    let diff_sources = DiffSources {
        store: comparator.store().clone(),
        stats: stats.clone(),
        routes: routes.clone(),
    };
    let reloader = Arc::new(Reloader::new(
        &loaded,
        LiveParts {
            mirror: mirror.clone(),
            routes: routes.clone(),
            comparator: comparator.clone(),
            recorder: recorder.clone(),
        },
    ));
    let admin = Admin::new(
        loaded.clone(),
        routes,
        stats.clone(),
        mirror.clone(),
        comparator,
        canary.clone(),
    )
    .with_state(state.clone(), fleet.clone())
    .with_recorder(recorder.clone());
    let admin = Arc::new(admin);
    let mut admin_service = Service::new("twinpeak admin".to_string(), AdminApp(admin.clone()));
    admin_service.add_tcp(&config.admin.listen.to_string());
    admin_service.threads = Some(1);

    for service in proxy_services {
        server.add_service(service);
    }
    if let Some(watch) = front_door.take_watch() {
        server.add_service(background_service("twinpeak certificates", watch));
    }
    server.add_service(admin_service);
    server.add_service(background_service(
        "twinpeak reload",
        ReloadService(reloader),
    ));
    server.add_service(background_service("twinpeak pair worker", worker));
    add_operations(&mut server, config, admin, canary.as_deref(), diff_sources);
    match (canary, fleet.clone()) {
        (_, Some(fleet)) => {
            server.add_service(background_service(
                "twinpeak canary fleet",
                FleetService::new(fleet),
            ));
        }
        (Some(canary), None) => {
            server.add_service(background_service(
                "twinpeak canary judge",
                JudgeService::new(canary),
            ));
        }
        (None, None) => {}
    }
    if let Some(state) = &state {
        server.add_service(background_service(
            "twinpeak state",
            FlushService::new(state.clone()),
        ));
    }
    let hand_over = Arc::new(HandOver {
        socket: upgrade::socket_path(config),
        state: state.clone(),
        fleet,
        mirror,
        recorder: recorder.clone(),
        handed_over,
    });
    let flush = Arc::new(ExitFlush::new(recorder, state).with_access_log(access_log));
    server.add_service(background_service(
        "twinpeak drain",
        DrainService::new(
            stats.metrics().requests_in_flight.clone(),
            flush.clone(),
            config.shutdown.drain.0,
        ),
    ));
    Ok(Assembled {
        server,
        flush,
        hand_over,
    })
}

/// The Pingora server, bootstrapped: upgrading, with the listening sockets of the running
/// proxy, waited for.
fn pingora_server(config: &Config, canary: bool, start: Start) -> Server {
    let conf = ServerConf {
        threads: config.threads,
        // Keep a failed primary exchange from being retried many times on its way to a 502.
        // With a canary, one more: a candidate request whose pooled connection broke and whose
        // new connection is refused still gets its turn on the primary.
        max_retries: if canary { 3 } else { 2 },
        // SIGTERM: the requests in flight get the drain; DrainService exits sooner once they
        // are answered.
        grace_period_seconds: Some(config.shutdown.drain.0.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(5),
        upgrade_sock: upgrade::socket_path(config).to_string_lossy().into_owned(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(upgrade::options(start), conf);
    if start == Start::Upgrade {
        log::info!(
            "upgrade: waiting on {} for the running proxy's listening sockets; send it SIGQUIT \
             (kill -QUIT PID) within 5 s",
            server.configuration.upgrade_sock
        );
    }
    server.bootstrap();
    server
}

/// The services operators and their tools talk to: the metrics-only listener, the readiness
/// probe, and the notifier with its webhooks.
fn add_operations(
    server: &mut Server,
    config: &Config,
    admin: Arc<Admin>,
    canary: Option<&Canary>,
    diffs: DiffSources,
) {
    let readiness = admin.readiness().clone();
    // What the state store holds was restored when it opened, before the services were made.
    readiness.set_restored();
    let probe = ListenerProbe::new(&config.listen_addresses(), readiness.clone());
    server.add_service(background_service("twinpeak readiness", probe));
    if let Some(metrics) = &config.metrics {
        let listener = MetricsListener::new(admin.clone());
        let mut service = Service::new("twinpeak metrics".to_string(), listener);
        service.add_tcp(&metrics.listen.to_string());
        service.threads = Some(1);
        server.add_service(service);
    }
    let replica = config.state.replica_name();
    let stats = diffs.stats.clone();
    let (notifier, service) = notifier(&config.notify, replica, stats.metrics(), diffs, readiness);
    if let Some(canary) = canary {
        canary.notify().connect(notifier);
    }
    if let Some(service) = service {
        server.add_service(background_service("twinpeak notifier", service));
    }
}

/// Fails at once, naming the key, when an address to listen on cannot be bound (taken, or not
/// this machine's). Pingora itself retries a taken address once a second for 30 s.
fn check_listen_addresses(config: &Config) -> Result<(), SetupError> {
    for (key, address) in config.bound_addresses() {
        // Bound without SO_REUSEPORT, so another proxy that shares ports that way is found too;
        // the probe closes before Pingora binds.
        std::net::TcpListener::bind(address)
            .map_err(|error| SetupError::new(key, SetupProblem::Listen { address, error }))?;
    }
    Ok(())
}

/// Runs the proxy until SIGINT, SIGTERM or SIGQUIT; `start` says whether it takes the
/// listening sockets over from a running proxy.
pub fn run(loaded: LoadedConfig, start: Start) -> Result<(), StartError> {
    log::info!(
        "twinpeak proxy: listening on {}, admin on {}, primary {}, shadow {}, canary {}, state {}",
        loaded
            .config
            .listen
            .iter()
            .map(|l| match (&l.tls, l.http2()) {
                (Some(_), true) => format!("{} (TLS, h2)", l.address),
                (Some(_), false) => format!("{} (TLS)", l.address),
                (None, true) => format!("{} (h2c)", l.address),
                (None, false) => l.address.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        loaded.config.admin.listen,
        loaded.config.primary.url,
        loaded
            .config
            .shadow
            .as_ref()
            .map(|s| s.url.to_string())
            .unwrap_or_else(|| "none".into()),
        loaded
            .config
            .canary
            .as_ref()
            .and_then(|c| c.upstream.as_ref())
            .map(|u| u.to_string())
            .unwrap_or_else(|| "none".into()),
        loaded.state_location(),
    );
    build(loaded, start)?.run();
    Ok(())
}
