//! `quictun up` run in-process inside a test host, plus the files a tunnel test needs
//!
//! Each [`Daemon`] runs `tunnel::up::run` on its own thread inside the host's network
//! namespace, so the TUN and the UDP socket belong to that namespace; dropping it stops the
//! daemon and waits for its teardown (addresses, routes, device).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tunnel::cert::{generate_ca, generate_peer, PeerCertRequest, TlsMaterial};
use tunnel::config::Config;
use tunnel::control::{self, PeerState, PeerStatus, Request, Status};

use crate::testnet::Host;

/// A temporary directory, removed on drop
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory named after the test binary's `prefix`, the process and `tag`
    pub fn new(prefix: &str, tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("{prefix}-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }

    /// The directory
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA, a `server` certificate for `server_ip`, and one certificate per name in `clients`,
/// all in `dir`
pub fn certs(dir: &Path, server_ip: Ipv4Addr, clients: &[&str]) {
    generate_ca(dir, true).expect("ca");
    let peers = std::iter::once(("server", vec![IpAddr::V4(server_ip)]))
        .chain(clients.iter().map(|&c| (c, Vec::new())));
    for (name, ips) in peers {
        generate_peer(
            dir,
            dir,
            &PeerCertRequest {
                name: name.into(),
                dns: vec![],
                ips,
            },
            true,
        )
        .expect("peer certificate");
    }
}

/// A daemon running in-process inside a host; stops (and tears down) when dropped
pub struct Daemon {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    socket: PathBuf,
}

impl Daemon {
    /// Write `text` as `dir/name.toml` and run `quictun up` on it inside `host`
    pub fn start(host: &Host, dir: &Path, name: &str, text: &str) -> Self {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write config");
        let config = Config::load_with_env(&path, HashMap::new()).expect("config");
        let material = TlsMaterial::load(&config.tls).expect("tls material");
        let socket = config.control_socket.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let host = host.clone();
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            let r = host.run(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                let r = rt.block_on(tunnel::up::run(config, material, async move {
                    let _ = rx.await;
                }));
                rt.shutdown_timeout(Duration::from_millis(200));
                r
            });
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("daemon {name}: {e}"),
                Err(e) => eprintln!("daemon {name}: {e}"),
            }
        });
        Self {
            stop: Some(tx),
            thread: Some(thread),
            socket,
        }
    }

    /// The daemon's control socket
    pub fn control_socket(&self) -> &Path {
        &self.socket
    }

    /// The control socket's status, if the daemon answers
    pub fn status(&self) -> Option<Status> {
        control::query(&self.socket, &Request::Status, Duration::from_secs(2))
            .ok()?
            .status
    }

    /// The first peer's status
    pub fn peer(&self) -> Option<PeerStatus> {
        self.status()?.peers.into_iter().next()
    }

    /// Wait (bounded) until the daemon answers on its control socket
    pub fn wait_ready(&self, limit: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.status().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Poll the first peer's status until `pred` holds (bounded); the last status is printed
    /// when it never does
    pub fn wait_for(
        &self,
        limit: Duration,
        pred: impl Fn(&PeerStatus) -> bool,
    ) -> Option<PeerStatus> {
        let t0 = Instant::now();
        let mut last = None;
        while t0.elapsed() < limit {
            if let Some(p) = self.peer() {
                if pred(&p) {
                    return Some(p);
                }
                last = Some(p);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("condition not met within {limit:?}; last status: {last:?}");
        None
    }

    /// Wait (bounded) until the first peer is connected
    pub fn wait_connected(&self, limit: Duration) -> bool {
        self.wait_for(limit, |p| p.state == PeerState::Connected)
            .is_some()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
