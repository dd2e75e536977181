//! `quictun demo`: a server and a client in two network namespaces joined by veth, with fresh
//! certificates, a ping and a 5-second TCP transfer through the tunnel
//!
//! Everything it creates (namespaces, the veth pair inside them, a temp directory, two daemon
//! processes) is owned by a guard and removed on success, failure or Ctrl-C. Addresses come
//! from 198.18.0.0/15 (benchmarking range, RFC 2544) so nothing collides with real networks.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netdev::{NetNs, NetNsGuard, Netlink};

use crate::cert::{generate_ca, generate_peer, PeerCertRequest};
use crate::control::{self, PeerState, Request};

const UNDERLAY_SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const UNDERLAY_CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const TUNNEL_SERVER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const TUNNEL_CLIENT: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
const PORT: u16 = 4433;
const TCP_PORT: u16 = 5201;
const TRANSFER: Duration = Duration::from_secs(5);

/// The embedded configuration; `@ROLE@` lines are filled per side
const TEMPLATE: &str = r#"[interface]
name = "qtdemo"
address = ["@ADDR@/24"]
mtu = 1280
@LISTEN@

[tls]
cert = "@NAME@.crt"
key = "@NAME@.key"
ca = "ca.crt"

[[peer]]
name = "@PEER@"
@ENDPOINT@
allowed_ips = ["@PEER_ADDR@/32"]
carriage = "datagram"
keepalive = "15s"

[control]
socket = "@DIR@/@NAME@.sock"

[log]
level = "warn"
"#;

/// Why the demo stopped
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// Namespaces and TUN devices need root
    #[error("demo needs root to create network namespaces and TUN devices: run it with sudo")]
    NotRoot,
    /// A step failed
    #[error("{step}: {reason}")]
    Step {
        /// What was being done
        step: &'static str,
        /// Why it failed
        reason: String,
    },
    /// Ctrl-C
    #[error("interrupted; everything created was removed")]
    Interrupted,
}

fn step(step: &'static str) -> impl Fn(String) -> DemoError {
    move |reason| DemoError::Step { step, reason }
}

/// Removes the demo's temp directory on drop
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon we started: SIGTERM on drop (it tears its tunnel down and exits), SIGKILL if it
/// does not within 3 s
struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Set by the Ctrl-C watcher; checked between steps and inside the waits
fn interrupt_flag() -> Result<Arc<AtomicBool>, DemoError> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| step("signal handler")(e.to_string()))?;
    // Register the handler before returning so an early Ctrl-C is caught too
    let mut sig = rt
        .block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        })
        .map_err(|e| step("signal handler")(e.to_string()))?;
    std::thread::spawn(move || {
        rt.block_on(async move {
            sig.recv().await;
            f.store(true, Ordering::SeqCst);
        });
    });
    Ok(flag)
}

fn check(flag: &AtomicBool) -> Result<(), DemoError> {
    if flag.load(Ordering::SeqCst) {
        Err(DemoError::Interrupted)
    } else {
        Ok(())
    }
}

/// Run `f` with a netlink handle inside `ns`
fn in_ns_netlink<R: Send>(
    ns: &NetNs,
    f: impl AsyncFnOnce(&Netlink) -> Result<R, String> + Send,
) -> Result<R, String> {
    ns.run_in(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let nl = Netlink::new().map_err(|e| e.to_string())?;
            f(&nl).await
        })
    })
    .map_err(|e| e.to_string())?
}

fn setup_underlay(server: &NetNs, client: &NetNs) -> Result<(), String> {
    in_ns_netlink(client, async |nl| {
        nl.add_veth("qtdemo0", "qtdemo1")
            .await
            .map_err(|e| e.to_string())?;
        let peer = nl.link_index("qtdemo1").await.map_err(|e| e.to_string())?;
        nl.move_to_netns_fd(peer, server.fd())
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    })?;
    for (ns, ifname, addr) in [
        (client, "qtdemo0", UNDERLAY_CLIENT),
        (server, "qtdemo1", UNDERLAY_SERVER),
    ] {
        in_ns_netlink(ns, async |nl| {
            let lo = nl.link_index("lo").await.map_err(|e| e.to_string())?;
            nl.set_up(lo).await.map_err(|e| e.to_string())?;
            let i = nl.link_index(ifname).await.map_err(|e| e.to_string())?;
            let net = ipnet::IpNet::new(addr.into(), 30).map_err(|e| e.to_string())?;
            nl.add_address(i, net).await.map_err(|e| e.to_string())?;
            nl.set_up(i).await.map_err(|e| e.to_string())
        })?;
    }
    Ok(())
}

fn write_config(dir: &Path, server: bool) -> Result<PathBuf, String> {
    let (name, peer, addr, peer_addr) = if server {
        ("server", "client", TUNNEL_SERVER, TUNNEL_CLIENT)
    } else {
        ("client", "server", TUNNEL_CLIENT, TUNNEL_SERVER)
    };
    let text = TEMPLATE
        .replace(
            "@LISTEN@",
            &if server {
                format!("listen = \"{UNDERLAY_SERVER}:{PORT}\"")
            } else {
                String::new()
            },
        )
        .replace(
            "@ENDPOINT@",
            &if server {
                String::new()
            } else {
                format!("endpoint = \"{UNDERLAY_SERVER}:{PORT}\"")
            },
        )
        .replace("@ADDR@", &addr.to_string())
        .replace("@PEER_ADDR@", &peer_addr.to_string())
        .replace("@PEER@", peer)
        .replace("@NAME@", name)
        .replace("@DIR@", &dir.display().to_string());
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn start(ns: &NetNs, exe: &Path, config: &Path) -> Result<Daemon, String> {
    let mut cmd = Command::new(exe);
    cmd.arg("up")
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let child = ns
        .spawn_command(&mut cmd)
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    Ok(Daemon { child })
}

/// Ping with the system `ping` if there is one; returns (replies, avg RTT ms)
fn ping(ns: &NetNs, dst: Ipv4Addr) -> Option<(u32, f64)> {
    let out = ns
        .output(
            Command::new("ping")
                .args(["-n", "-q", "-c", "5", "-i", "0.2", "-W", "1"])
                .arg(dst.to_string()),
        )
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let replies = text.lines().find_map(|l| {
        l.split(", ")
            .nth(1)?
            .strip_suffix(" received")?
            .parse()
            .ok()
    })?;
    let avg = text
        .lines()
        .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
        .and_then(|v| v.split('/').nth(1)?.parse().ok())
        .unwrap_or(f64::NAN);
    Some((replies, avg))
}

/// Time a TCP handshake through the tunnel, for machines without `ping`
fn tcp_rtt(client: &NetNs, server: &NetNs) -> Result<f64, String> {
    let listener = server
        .run_in(|| TcpListener::bind((TUNNEL_SERVER, TCP_PORT + 1)))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let t = client
        .run_in(|| {
            let start = Instant::now();
            TcpStream::connect_timeout(
                &SocketAddr::from((TUNNEL_SERVER, TCP_PORT + 1)),
                Duration::from_secs(2),
            )
            .map(|_| start.elapsed())
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    drop(listener);
    Ok(t.as_secs_f64() * 1000.0)
}

/// Bulk TCP from client to server for [`TRANSFER]`; returns (bytes received, seconds)
fn transfer(client: &NetNs, server: &NetNs, stop: &AtomicBool) -> Result<(u64, f64), String> {
    let listener = server
        .run_in(|| TcpListener::bind((TUNNEL_SERVER, TCP_PORT)))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("listen on {TUNNEL_SERVER}:{TCP_PORT}: {e}"))?;
    std::thread::scope(|s| {
        let rx = s.spawn(move || -> Result<(u64, f64), String> {
            let (mut conn, _) = listener.accept().map_err(|e| e.to_string())?;
            conn.set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            let start = Instant::now();
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => total += n as u64,
                    Err(e) => return Err(format!("receiving: {e}")),
                }
            }
            Ok((total, start.elapsed().as_secs_f64()))
        });
        let tx = client
            .run_in(|| -> Result<(), String> {
                let mut conn = TcpStream::connect_timeout(
                    &SocketAddr::from((TUNNEL_SERVER, TCP_PORT)),
                    Duration::from_secs(3),
                )
                .map_err(|e| format!("connect {TUNNEL_SERVER}:{TCP_PORT}: {e}"))?;
                conn.set_write_timeout(Some(Duration::from_secs(5)))
                    .map_err(|e| e.to_string())?;
                let buf = vec![0x5au8; 256 * 1024];
                let start = Instant::now();
                while start.elapsed() < TRANSFER && !stop.load(Ordering::SeqCst) {
                    conn.write_all(&buf).map_err(|e| format!("sending: {e}"))?;
                }
                conn.shutdown(std::net::Shutdown::Write)
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        let got = rx.join().map_err(|_| "receiver panicked".to_string())?;
        tx?;
        got
    })
}

/// Run the demo, printing each step
pub fn run() -> Result<(), DemoError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DemoError::NotRoot);
    }
    let started = Instant::now();
    let stop = interrupt_flag()?;
    let exe = std::env::current_exe().map_err(|e| step("locating quictun")(e.to_string()))?;
    let id = std::process::id();
    println!("quictun demo: a server and a client in network namespaces, joined by veth");

    // Step 1: namespaces and the underlay
    let ns_s: NetNsGuard = NetNs::create(&format!("qtdemo-{id}-s"))
        .map_err(|e| step("creating namespace")(e.to_string()))?
        .into_guard();
    let ns_c: NetNsGuard = NetNs::create(&format!("qtdemo-{id}-c"))
        .map_err(|e| step("creating namespace")(e.to_string()))?
        .into_guard();
    setup_underlay(&ns_s, &ns_c).map_err(step("creating the veth underlay"))?;
    println!(
        "[1/6] namespaces {} ({UNDERLAY_SERVER}) and {} ({UNDERLAY_CLIENT}) joined by veth",
        ns_s.name(),
        ns_c.name()
    );
    check(&stop)?;

    // Step 2: certificates
    let dir = TempDir(std::env::temp_dir().join(format!("quictun-demo-{id}")));
    let certs = step("creating certificates");
    generate_ca(&dir.0, true).map_err(|e| certs(e.to_string()))?;
    for (name, ip) in [("server", Some(UNDERLAY_SERVER)), ("client", None)] {
        let req = PeerCertRequest {
            name: name.into(),
            dns: Vec::new(),
            ips: ip.map(Into::into).into_iter().collect(),
        };
        generate_peer(&dir.0, &dir.0, &req, true).map_err(|e| certs(e.to_string()))?;
    }
    println!(
        "[2/6] CA and certificates for server and client in {}",
        dir.0.display()
    );

    // Step 3: the daemons
    let cfg_s = write_config(&dir.0, true).map_err(step("writing configuration"))?;
    let cfg_c = write_config(&dir.0, false).map_err(step("writing configuration"))?;
    let _server = start(&ns_s, &exe, &cfg_s).map_err(step("starting the server"))?;
    let _client = start(&ns_c, &exe, &cfg_c).map_err(step("starting the client"))?;
    println!(
        "[3/6] quictun up: server {TUNNEL_SERVER} listening on {UNDERLAY_SERVER}:{PORT}, client {TUNNEL_CLIENT}"
    );

    // Step 4: wait for the connection
    let sock = dir.0.join("client.sock");
    let t0 = Instant::now();
    let status = loop {
        check(&stop)?;
        if let Ok(reply) = control::query(&sock, &Request::Status, Duration::from_secs(1)) {
            if let Some(st) = reply.status {
                if st
                    .peers
                    .first()
                    .is_some_and(|p| p.state == PeerState::Connected)
                {
                    break st;
                }
            }
        }
        if t0.elapsed() > Duration::from_secs(10) {
            return Err(step("waiting for the tunnel")(
                "no connection after 10 s (run `quictun up` by hand with RUST_LOG=debug to see why)".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let peer = status.peers.first();
    println!(
        "[4/6] tunnel connected in {:.2} s (QUIC datagrams, max {} bytes)",
        t0.elapsed().as_secs_f64(),
        peer.and_then(|p| p.max_datagram)
            .map_or("?".into(), |m| m.to_string())
    );

    // Step 5: ping
    match ping(&ns_c, TUNNEL_SERVER) {
        Some((n, avg)) => println!(
            "[5/6] ping {TUNNEL_SERVER} through the tunnel: {n}/5 replies, avg RTT {avg:.3} ms"
        ),
        None => {
            let ms = tcp_rtt(&ns_c, &ns_s).map_err(step("measuring RTT"))?;
            println!(
                "[5/6] TCP connect to {TUNNEL_SERVER} through the tunnel: {ms:.3} ms (no ping binary)"
            );
        }
    }
    check(&stop)?;

    // Step 6: bulk TCP
    let (bytes, secs) = transfer(&ns_c, &ns_s, &stop).map_err(step("TCP transfer"))?;
    check(&stop)?;
    println!(
        "[6/6] TCP {TUNNEL_CLIENT} -> {TUNNEL_SERVER}: {:.1} MiB in {secs:.1} s = {:.0} Mbit/s",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 * 8.0 / secs.max(1e-9) / 1e6
    );
    drop(_client);
    drop(_server);
    drop(ns_c);
    drop(ns_s);
    drop(dir);
    println!(
        "done in {:.1} s; namespaces, processes and files removed",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
