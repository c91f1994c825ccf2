//! A throwaway PostgreSQL server for tests: its own data directory in a temporary directory,
//! a free loopback port, password authentication (the password in a file, as a deployment
//! gives it), stopped and deleted when dropped. Uses the server binaries of Debian's
//! `postgresql` package; without them it fails naming the package, never skips.
//!
//! PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user (which
//! the package creates), and the temporary directory is handed to it.
//!
//! Include it from any test crate: `#[path = ".../proxy/tests/support/postgres.rs"] mod pg;`.

#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The role tests connect as.
pub const USER: &str = "twinpeak";

/// Longest wait for the server to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running throwaway server.
pub struct ThrowawayPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
    server: Option<Child>,
    /// Settings given to the server besides the harness's own (`-c name=value`).
    settings: Vec<String>,
}

/// The directory holding `initdb`, `postgres` and `pg_ctl`: the newest under
/// `/usr/lib/postgresql/*/bin`, else wherever `initdb` is on the `PATH`.
fn server_binaries() -> PathBuf {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_server(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| has_server(dir))
        .unwrap_or_else(|| {
            panic!(
                "the PostgreSQL server (initdb, postgres) is not installed: these tests need \
                 Debian's `postgresql` package (apt-get install postgresql)"
            )
        })
}

/// The `postgres` user's uid and gid when running as root (PostgreSQL refuses root).
fn unprivileged_user() -> Option<(u32, u32)> {
    let euid = fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
    if euid != 0 {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let ids = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres") && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    });
    Some(ids.unwrap_or_else(|| {
        panic!(
            "running as root, and there is no `postgres` user to run the server as: \
             install Debian's `postgresql` package (apt-get install postgresql)"
        )
    }))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl ThrowawayPostgres {
    /// Creates a cluster in a new temporary directory and starts it.
    pub fn start() -> Self {
        Self::start_with(|_| Vec::new())
    }

    /// Creates a cluster that speaks TLS with a certificate for 127.0.0.1 signed by a
    /// throwaway authority (made with `openssl`); returns it and the authority's PEM file.
    pub fn start_with_tls() -> (Self, PathBuf) {
        let mut authority = PathBuf::new();
        let pg = Self::start_with(|pg| {
            let file = |name: &str| pg.dir.path().join(name);
            let openssl = |args: &[&str]| {
                let made = Command::new("openssl")
                    .current_dir(pg.dir.path())
                    .args(args)
                    .output()
                    .expect("openssl runs (Debian's `openssl` package)");
                assert!(
                    made.status.success(),
                    "{}",
                    String::from_utf8_lossy(&made.stderr)
                );
            };
            fs::write(
                file("server.ext"),
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
            )
            .unwrap();
            openssl(
                &[
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ]
                .into_iter()
                .chain(["-subj", "/CN=twinpeak test authority"])
                .chain(["-keyout", "ca.key", "-out", "ca.crt"])
                .collect::<Vec<_>>(),
            );
            openssl(
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=127.0.0.1",
                ]
                .into_iter()
                .chain(["-keyout", "server.key", "-out", "server.csr"])
                .collect::<Vec<_>>(),
            );
            openssl(
                &[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                ]
                .into_iter()
                .chain(["-CAcreateserial", "-days", "1", "-extfile", "server.ext"])
                .chain(["-out", "server.crt"])
                .collect::<Vec<_>>(),
            );
            let (key, crt) = (file("server.key"), file("server.crt"));
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
            if let Some((uid, gid)) = pg.run_as {
                std::os::unix::fs::chown(&key, Some(uid), Some(gid)).unwrap();
                std::os::unix::fs::chown(&crt, Some(uid), Some(gid)).unwrap();
            }
            authority = file("ca.crt");
            vec![
                "ssl=on".to_string(),
                format!("ssl_cert_file={}", crt.display()),
                format!("ssl_key_file={}", key.display()),
            ]
        });
        (pg, authority)
    }

    /// Creates a cluster, then starts it with the settings `settings` gives (it may write
    /// files into the cluster's directory first).
    fn start_with(settings: impl FnOnce(&ThrowawayPostgres) -> Vec<String>) -> Self {
        let bin = server_binaries();
        let run_as = unprivileged_user();
        // As root, in /tmp: the `postgres` user may not reach a TMPDIR of root's.
        let parent = match run_as {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let dir = tempfile::Builder::new()
            .prefix("twinpeak-pg-")
            .tempdir_in(parent)
            .expect("a temporary directory");
        let mut pg = ThrowawayPostgres {
            dir,
            bin,
            port: free_port(),
            run_as,
            server: None,
            settings: Vec::new(),
        };
        fs::write(pg.password_file(), format!("{}\n", pg.password())).unwrap();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(pg.dir.path(), Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(pg.password_file(), Some(uid), Some(gid)).unwrap();
        }
        let data = pg.data_dir();
        let init = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pg.password_file().display()))
            .output()
            .expect("initdb runs");
        assert!(
            init.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&init.stdout),
            String::from_utf8_lossy(&init.stderr)
        );
        pg.settings = settings(&pg);
        pg.resume();
        pg
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.current_dir(self.dir.path());
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password of [`USER`].
    pub fn password(&self) -> &'static str {
        "throwaway-password-1"
    }

    /// A file holding the password on its first line.
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    /// The URL to connect with, without the password.
    pub fn url(&self) -> String {
        format!("postgresql://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server again (after [`ThrowawayPostgres::stop`]) on the same port and data,
    /// and waits until it takes connections.
    pub fn resume(&mut self) {
        assert!(self.server.is_none(), "the server is running");
        let log = fs::File::create(self.dir.path().join("server.log")).unwrap();
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(self.dir.path().join("server.log"), Some(uid), Some(gid))
                .unwrap();
        }
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=40", "-c", "shared_buffers=16MB"])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        self.server = Some(child);
        self.wait_until_ready();
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut config: postgres::Config = self.url().parse().unwrap();
            config
                .password(self.password())
                .connect_timeout(Duration::from_secs(2));
            match config.connect(postgres::NoTls) {
                Ok(client) => {
                    drop(client);
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    if let Some(status) = self
                        .server
                        .as_mut()
                        .and_then(|s| s.try_wait().ok())
                        .flatten()
                    {
                        panic!("postgres exited ({status}) while starting: {}", self.log());
                    }
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!(
                    "postgres did not take connections in time: {e}\n{}",
                    self.log()
                ),
            }
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server (fast shutdown: connections are cut), keeping its data.
    pub fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let stopped = self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "-t", "20"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !stopped.is_ok_and(|s| s.success()) {
            let _ = server.kill();
        }
        let _ = server.wait();
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}
