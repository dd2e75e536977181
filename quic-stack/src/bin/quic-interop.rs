//! `quic-interop`: an endpoint for the QUIC interop runner (quic-interop/quic-interop-runner)
//!
//! `quic-interop server` serves files from `--www` over HTTP/0.9 (ALPN `hq-interop`);
//! `quic-interop client` fetches every URL of `REQUESTS` into `--downloads`. `TESTCASE` selects
//! the behaviour; exit codes follow the runner: 0 success, 1 failure, 127 unsupported test case.
//! `SSLKEYLOGFILE` gets the TLS secrets, `QLOGDIR` one minimal JSON-SEQ qlog per connection.
//! See `docs/interop.md`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quic_stack::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use quic_stack::connection::{ConnectionError, ConnectionStats};
use quic_stack::driver::{Connection, Endpoint, RecvStream, SendStream};
use quic_stack::{crypto, tls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALPN: &[u8] = b"hq-interop";
/// Exit code the runner reads as "test case not supported"
const EXIT_UNSUPPORTED: u8 = 127;
/// Longest HTTP/0.9 request line we accept; real ones are well under 1 KiB
const MAX_REQUEST: usize = 8 * 1024;
/// Application error code for a request we cannot serve (HTTP/0.9 has no status line)
const CODE_NOT_FOUND: u64 = 0x1;
/// The runner's multiplexing check needs `initial_max_streams_bidi` ≤ 1000 so that the client
/// has to wait for MAX_STREAMS; 128 keeps many streams in flight and still forces updates
const SERVER_MAX_BIDI: u64 = 128;

/// Connections open at once for `multiconnect` (one connection per file)
const PARALLEL_CONNECTIONS: usize = 8;

type Result<T> = std::result::Result<T, String>;

fn usage() -> String {
    "usage: quic-interop server [--www DIR] [--listen ADDR]... [--cert PEM] [--key PEM]\n\
     \x20      quic-interop client [--downloads DIR]   (env: TESTCASE, REQUESTS, SSLKEYLOGFILE, QLOGDIR)"
        .to_owned()
}

#[derive(Debug)]
struct Args {
    role: Role,
    www: PathBuf,
    downloads: PathBuf,
    listen: Vec<SocketAddr>,
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let role = match it.next().as_deref() {
        Some("server") => Role::Server,
        Some("client") => Role::Client,
        Some("-h" | "--help") | None => return Err(usage()),
        Some(other) => return Err(format!("unknown role {other:?}; {}", usage())),
    };
    let mut args = Args {
        role,
        www: PathBuf::from("/www"),
        downloads: PathBuf::from("/downloads"),
        listen: Vec::new(),
        cert: PathBuf::from("/certs/cert.pem"),
        key: PathBuf::from("/certs/priv.key"),
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--www" => args.www = value()?.into(),
            "--downloads" => args.downloads = value()?.into(),
            "--cert" => args.cert = value()?.into(),
            "--key" => args.key = value()?.into(),
            "--listen" => {
                let v = value()?;
                let addr = v
                    .parse()
                    .map_err(|e| format!("--listen {v:?}: {e} (want ADDR:PORT)"))?;
                args.listen.push(addr);
            }
            other => return Err(format!("unknown argument {other:?}; {}", usage())),
        }
    }
    if args.listen.is_empty() {
        // IPv6 sockets of the driver are v6-only, so the default listens on both families
        args.listen = vec![
            SocketAddr::from(([0u16; 8], 443)),
            SocketAddr::from(([0u8; 4], 443)),
        ];
    }
    Ok(args)
}

/// How an endpoint behaves for one `TESTCASE`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// One connection, every request on its own stream, all at once
    Concurrent,
    /// One connection per request, one after the other (runner name `multiconnect`)
    ConnectionPerRequest,
    /// First request on one connection, the rest on a second one resuming the TLS session
    Resumption,
    /// Like `Concurrent`, with a 1-RTT key update as early as the connection allows
    KeyUpdate,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    plan: Plan,
    /// Client: offer only TLS_CHACHA20_POLY1305_SHA256
    chacha20_only: bool,
    /// Server: validate addresses with Retry first
    retry: bool,
    /// Client: offer v2 (starting in v1); server: prefer v2
    v2: bool,
    /// Both: 0-RTT on (`zerortt`: the resumed connection sends its requests in 0-RTT)
    zero_rtt: bool,
    /// Server: advertise a preferred address (`connectionmigration`); clients always follow
    preferred_address: bool,
}

/// The behaviour for `testcase`, or `None` if it is not supported (exit 127)
///
/// Unsupported, and why (see docs/interop.md): `http3` (no HTTP/3 layer) and
/// `versionnegotiation` (disabled in the runner).
///
/// `ecn` needs nothing special: the stack marks ECT(0) and reports ECN counts by default.
/// `v2`: the client starts in v1 offering v2 in version_information, the server prefers v2 and
/// upgrades it (compatible version negotiation, RFC 9368 §2.3).
fn case(testcase: &str) -> Option<Case> {
    let plan = match testcase {
        // Network impairments are the runner's business; the endpoints just transfer
        "handshake"
        | "transfer"
        | "longrtt"
        | "chacha20"
        | "multiplexing"
        | "retry"
        | "blackhole"
        | "amplificationlimit"
        | "transferloss"
        | "transfercorruption"
        | "ipv6"
        | "goodput"
        | "crosstraffic"
        | "rebind-port"
        | "rebind-addr"
        | "ecn"
        | "v2"
        | "connectionmigration" => Plan::Concurrent,
        "multiconnect" | "handshakeloss" | "handshakecorruption" => Plan::ConnectionPerRequest,
        // The first request gets the ticket, the second connection sends the rest in 0-RTT
        "resumption" | "zerortt" => Plan::Resumption,
        "keyupdate" => Plan::KeyUpdate,
        _ => return None,
    };
    Some(Case {
        plan,
        chacha20_only: testcase == "chacha20",
        retry: testcase == "retry",
        v2: testcase == "v2",
        zero_rtt: testcase == "zerortt",
        preferred_address: testcase == "connectionmigration",
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("quic-interop: {e}");
            return ExitCode::from(2);
        }
    };
    let testcase = std::env::var("TESTCASE").unwrap_or_default();
    let Some(case) = case(&testcase) else {
        eprintln!("quic-interop: unsupported test case {testcase:?}");
        return ExitCode::from(EXIT_UNSUPPORTED);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quic-interop: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match args.role {
            // The server side of keyupdate is a plain transfer: the core answers the peer's
            // key update by itself
            Role::Server => run_server(&args, case).await,
            Role::Client => run_client(&args, case).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quic-interop: {e}");
            ExitCode::from(1)
        }
    }
}

fn key_log_enabled() -> bool {
    std::env::var_os("SSLKEYLOGFILE").is_some_and(|v| !v.is_empty())
}

// ---- qlog ----

/// A minimal qlog (draft-ietf-quic-qlog-main-schema, JSON-SEQ): connection start and close
///
/// Enough for tools to find one file per connection with its endpoints and outcome; packet-level
/// events would need hooks in the core that it does not have yet.
struct Qlog {
    file: std::fs::File,
    start: Instant,
}

static QLOG_SEQ: AtomicU64 = AtomicU64::new(0);

impl Qlog {
    /// A new trace in `QLOGDIR`, or `None` when unset or not writable (qlog is best effort)
    fn create(vantage: &str) -> Option<Self> {
        let dir = std::env::var_os("QLOGDIR").filter(|d| !d.is_empty())?;
        let dir = PathBuf::from(dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            warn(&format!("qlog dir {}: {e}", dir.display()));
            return None;
        }
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let seq = QLOG_SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{vantage}-{}-{}-{seq}.sqlog",
            std::process::id(),
            unix.as_micros()
        );
        let mut file = match std::fs::File::create(dir.join(&name)) {
            Ok(f) => f,
            Err(e) => {
                warn(&format!("qlog file {name}: {e}"));
                return None;
            }
        };
        let header = format!(
            "\u{1e}{{\"qlog_version\":\"0.3\",\"qlog_format\":\"JSON-SEQ\",\"title\":\"quic-interop\",\
             \"trace\":{{\"vantage_point\":{{\"type\":\"{vantage}\"}},\
             \"common_fields\":{{\"time_format\":\"relative\",\"reference_time\":{}}}}}}}\n",
            unix.as_millis()
        );
        file.write_all(header.as_bytes()).ok()?;
        Some(Self {
            file,
            start: Instant::now(),
        })
    }

    fn event(&mut self, name: &str, data: &str) {
        let time = self.start.elapsed().as_secs_f64() * 1000.0;
        let line = format!("\u{1e}{{\"time\":{time:.3},\"name\":\"{name}\",\"data\":{data}}}\n");
        // Best effort: a full disk must not fail the transfer
        let _ = self.file.write_all(line.as_bytes());
    }
}

fn qlog_started(qlog: &mut Option<Qlog>, local: SocketAddr, remote: SocketAddr) {
    if let Some(q) = qlog {
        q.event(
            "connectivity:connection_started",
            &format!(
                "{{\"ip_version\":\"{}\",\"src_ip\":\"{}\",\"src_port\":{},\"dst_ip\":\"{}\",\"dst_port\":{}}}",
                if remote.is_ipv6() { "ipv6" } else { "ipv4" },
                local.ip(),
                local.port(),
                remote.ip(),
                remote.port()
            ),
        );
    }
}

fn qlog_closed(qlog: &mut Option<Qlog>, stats: Option<ConnectionStats>, outcome: &str) {
    if let Some(q) = qlog {
        let mut data = format!("{{\"trigger\":\"{}\"", json_escape(outcome));
        if let Some(s) = stats {
            let _ = write!(
                data,
                ",\"quictun_stats\":{{\"packets_sent\":{},\"packets_received\":{},\"packets_lost\":{},\
                 \"bytes_sent\":{},\"bytes_received\":{},\"pto_count\":{},\"key_updates\":{},\"smoothed_rtt_ms\":{:.3},\
                 \"version_upgrades\":{},\"ecn_capable\":{},\"ecn_ce_reported\":{},\
                 \"migrations\":{},\"zero_rtt_bytes_sent\":{},\"zero_rtt_bytes_accepted\":{}}}",
                s.packets_sent,
                s.packets_received,
                s.packets_lost,
                s.udp_tx_bytes,
                s.udp_rx_bytes,
                s.pto_count,
                s.key_updates,
                s.rtt.as_secs_f64() * 1000.0,
                s.version_upgrades,
                s.ecn_capable,
                s.ecn_ce_reported,
                s.migrations,
                s.zero_rtt_bytes_sent,
                s.zero_rtt_bytes_accepted
            );
        }
        data.push('}');
        q.event("connectivity:connection_closed", &data);
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Non-fatal problems go to stderr; the binary has no tracing subscriber
fn warn(msg: &str) {
    eprintln!("quic-interop: warning: {msg}");
}

// ---- server ----

fn load_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("certificate {}: no certificates", cert.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("key {}: {e}", key.display()))?;
    Ok((chain, key))
}

async fn run_server(args: &Args, case: Case) -> Result<()> {
    let (chain, key) = load_identity(&args.cert, &args.key)?;
    let mut crypto = tls::server_config(chain, key, vec![ALPN.to_vec()], None, case.zero_rtt)
        .map_err(|e| format!("server TLS config: {e}"))?;
    crypto.key_log = tls::key_log(key_log_enabled());
    let transport = TransportConfig {
        max_concurrent_bidi_streams: SERVER_MAX_BIDI,
        zero_rtt: case.zero_rtt,
        // blackhole cuts the link for 2 s at a time; the default 30 s idle timeout rides it out
        ..TransportConfig::default()
    };
    let server = ServerConfig {
        retry: case.retry,
        transport: Arc::new(transport),
        ..ServerConfig::new(Arc::new(crypto))
    };
    let www = Arc::new(args.www.clone());
    let mut tasks = tokio::task::JoinSet::new();
    let mut bound = 0;
    for &addr in &args.listen {
        let mut server = server.clone();
        if case.preferred_address {
            let preferred = preferred_for(addr)
                .ok_or_else(|| format!("no address to advertise as preferred for {addr}"))?;
            match preferred {
                SocketAddr::V4(a) => server.preferred_address_v4 = Some(a),
                SocketAddr::V6(a) => server.preferred_address_v6 = Some(a),
            }
            eprintln!("quic-interop: preferred address {preferred}");
        }
        let endpoint =
            match Endpoint::new(addr, endpoint_config(Role::Server, case.v2), Some(server)) {
                Ok(e) => e,
                // A host without IPv6 (or IPv4) still serves on the other family
                Err(e) if args.listen.len() > 1 => {
                    warn(&format!("listen {addr}: {e}"));
                    continue;
                }
                Err(e) => return Err(format!("listen {addr}: {e}")),
            };
        bound += 1;
        eprintln!("quic-interop: serving {} on {addr}", www.display());
        tasks.spawn(accept_loop(endpoint, www.clone()));
    }
    if bound == 0 {
        return Err("could not listen on any address".into());
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// `connectionmigration`: the server's preferred address is its listening IP (for a wildcard
/// listener, the first global address of the family on an interface) on the next port
fn preferred_for(listen: SocketAddr) -> Option<SocketAddr> {
    let ip = if listen.ip().is_unspecified() {
        interface_ip(listen.is_ipv6())?
    } else {
        listen.ip()
    };
    Some(SocketAddr::new(ip, listen.port().checked_add(1)?))
}

fn interface_ip(v6: bool) -> Option<IpAddr> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter_map(|a| a.address)
        .filter_map(|s| {
            if v6 {
                s.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip()))
            } else {
                s.as_sockaddr_in().map(|a| IpAddr::V4(a.ip()))
            }
        })
        .find(|ip| match ip {
            IpAddr::V4(a) => !a.is_loopback() && !a.is_link_local(),
            // fe80::/10 is link-local
            IpAddr::V6(a) => !a.is_loopback() && a.segments()[0] & 0xffc0 != 0xfe80,
        })
}

fn endpoint_config(role: Role, v2: bool) -> EndpointConfig {
    // The runner's common check wants exactly version 1 in the server's Initials, so v2 is
    // preferred (server) or offered (client) only in the `v2` test case. A v1-first server
    // still accepts clients that start in v2 (and converts them to v1).
    let supported_versions = match (role, v2) {
        (Role::Server, true) => vec![crypto::VERSION_2, crypto::VERSION_1],
        (Role::Server, false) | (Role::Client, true) => {
            vec![crypto::VERSION_1, crypto::VERSION_2]
        }
        (Role::Client, false) => vec![crypto::VERSION_1],
    };
    EndpointConfig {
        supported_versions,
        ..EndpointConfig::default()
    }
}

async fn accept_loop(endpoint: Endpoint, www: Arc<PathBuf>) {
    while let Some(conn) = endpoint.accept().await {
        let www = www.clone();
        let local = endpoint.local_addr();
        tokio::spawn(async move {
            let mut qlog = Qlog::create("server");
            if let Some(remote) = conn.remote_address() {
                qlog_started(&mut qlog, local, remote);
            }
            let outcome = serve_connection(&conn, &www).await;
            qlog_closed(&mut qlog, conn.stats(), &outcome.to_string());
        });
    }
}

/// Serve every request stream until the connection ends; the reason it ended
async fn serve_connection(conn: &Connection, www: &Arc<PathBuf>) -> ConnectionError {
    if let Err(e) = conn.handshake().await {
        return e;
    }
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let www = www.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_stream(send, recv, &www).await {
                        warn(&e);
                    }
                });
            }
            Err(e) => return e,
        }
    }
}

async fn serve_stream(mut send: SendStream, mut recv: RecvStream, www: &Path) -> Result<()> {
    let request = recv
        .read_to_end(MAX_REQUEST)
        .await
        .map_err(|e| format!("stream {:?}: reading request: {e}", recv.id()))?;
    let path = match parse_request(&request).and_then(|p| resolve(www, p)) {
        Ok(path) => path,
        Err(e) => {
            let _ = send.reset(CODE_NOT_FOUND);
            return Err(format!("stream {:?}: {e}", send.id()));
        }
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            let _ = send.reset(CODE_NOT_FOUND);
            return Err(format!("{}: {e}", path.display()));
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        send.write_all(&buf[..n])
            .await
            .map_err(|e| format!("sending {}: {e}", path.display()))?;
    }
    send.finish()
        .map_err(|e| format!("finishing {}: {e}", path.display()))
}

/// The path of an HTTP/0.9 request line (`GET /path\r\n`)
fn parse_request(request: &[u8]) -> Result<&str> {
    let line = std::str::from_utf8(request).map_err(|_| "request is not UTF-8".to_owned())?;
    let line = line.trim_end_matches(['\r', '\n']);
    let path = line
        .strip_prefix("GET ")
        .ok_or_else(|| format!("not a GET request: {:?}", truncate(line)))?;
    Ok(path.trim())
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `request_path` inside `root`; anything that could climb out (`..`, absolute parts) is refused
fn resolve(root: &Path, request_path: &str) -> Result<PathBuf> {
    // Query strings mean nothing to a static file server
    let path = request_path.split(['?', '#']).next().unwrap_or_default();
    let relative = Path::new(path.trim_start_matches('/'));
    let mut out = root.to_path_buf();
    let mut parts = 0;
    for component in relative.components() {
        match component {
            Component::Normal(part) => {
                out.push(part);
                parts += 1;
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!("refused path {:?}", truncate(request_path)));
            }
        }
    }
    if parts == 0 || path.contains('\0') {
        return Err(format!("refused path {:?}", truncate(request_path)));
    }
    Ok(out)
}

// ---- client ----

#[derive(Debug, Clone)]
struct Request {
    host: String,
    port: u16,
    /// As sent, starting with `/`
    path: String,
}

fn parse_url(url: &str) -> Result<Request> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("URL {url:?} is not https://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("URL {url:?}: unterminated IPv6 literal"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| format!("URL {url:?}: bad port {p:?}"))?,
        None => 443,
    };
    if host.is_empty() {
        return Err(format!("URL {url:?}: no host"));
    }
    Ok(Request {
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// Where a download of `request_path` is stored; refuses paths that would leave `dir`
fn download_path(dir: &Path, request_path: &str) -> Result<PathBuf> {
    resolve(dir, request_path)
}

async fn run_client(args: &Args, case: Case) -> Result<()> {
    let requests = std::env::var("REQUESTS").map_err(|_| "REQUESTS is not set".to_owned())?;
    let requests = requests
        .split_whitespace()
        .map(parse_url)
        .collect::<Result<Vec<_>>>()?;
    let Some(first) = requests.first() else {
        return Err("REQUESTS is empty".into());
    };
    if requests
        .iter()
        .any(|r| r.host != first.host || r.port != first.port)
    {
        return Err("all REQUESTS must name the same server".into());
    }
    let remote = tokio::net::lookup_host((first.host.as_str(), first.port))
        .await
        .map_err(|e| format!("resolving {}: {e}", first.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", first.host))?;
    tokio::fs::create_dir_all(&args.downloads)
        .await
        .map_err(|e| format!("{}: {e}", args.downloads.display()))?;

    let bind: SocketAddr = if remote.is_ipv6() {
        SocketAddr::from(([0u16; 8], 0))
    } else {
        SocketAddr::from(([0u8; 4], 0))
    };
    let config = client_config(case)?;
    if case.plan == Plan::KeyUpdate {
        return keyupdate::fetch(
            bind,
            remote,
            &first.host,
            config,
            &requests,
            &args.downloads,
        )
        .await;
    }
    let endpoint = Endpoint::new(bind, endpoint_config(Role::Client, case.v2), None)
        .map_err(|e| format!("binding {bind}: {e}"))?;
    let client = Client {
        endpoint,
        config,
        remote,
        server_name: first.host.clone(),
        downloads: args.downloads.clone(),
    };
    match case.plan {
        Plan::Concurrent => client.fetch_on_one_connection(&requests).await,
        Plan::ConnectionPerRequest => {
            // Under the runner's 30 % loss a handshake averages about a second of PTOs;
            // overlapping a few keeps 50 of them well inside its 300 s timeout
            let client = Arc::new(client);
            let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL_CONNECTIONS));
            let mut tasks = tokio::task::JoinSet::new();
            for request in requests {
                let (client, limit) = (client.clone(), limit.clone());
                tasks.spawn(async move {
                    let _permit = limit
                        .acquire_owned()
                        .await
                        .map_err(|e| format!("connection limit: {e}"))?;
                    client
                        .fetch_on_one_connection(std::slice::from_ref(&request))
                        .await
                });
            }
            while let Some(joined) = tasks.join_next().await {
                joined.map_err(|e| format!("connection task: {e}"))??;
            }
            Ok(())
        }
        Plan::KeyUpdate => Err("keyupdate runs on its own loop".into()),
        Plan::Resumption => {
            let (head, tail) = requests.split_at(1);
            client.fetch_on_one_connection(head).await?;
            if !tail.is_empty() {
                // The same rustls config holds the session ticket of the first connection
                client.fetch_on_one_connection(tail).await?;
            }
            Ok(())
        }
    }
}

fn client_config(case: Case) -> Result<ClientConfig> {
    let mut crypto = if case.chacha20_only {
        let mut provider = rustls::crypto::ring::default_provider();
        provider
            .cipher_suites
            .retain(|s| s.suite() == rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
        tls::danger_insecure_client_config_with_provider(Arc::new(provider), vec![ALPN.to_vec()])
    } else {
        tls::danger_insecure_client_config(vec![ALPN.to_vec()])
    }
    .map_err(|e| format!("client TLS config: {e}"))?;
    crypto.key_log = tls::key_log(key_log_enabled());
    let transport = TransportConfig {
        // The runner asks clients for small initial windows so that the server needs
        // MAX_DATA / MAX_STREAM_DATA updates during `transfer`
        stream_receive_window: 256 * 1024,
        receive_window: 1024 * 1024,
        // HTTP/0.9 servers never open streams towards the client
        max_concurrent_uni_streams: 0,
        zero_rtt: case.zero_rtt,
        ..TransportConfig::default()
    };
    Ok(ClientConfig {
        transport: Arc::new(transport),
        ..ClientConfig::new(Arc::new(crypto))
    })
}

struct Client {
    endpoint: Endpoint,
    config: ClientConfig,
    remote: SocketAddr,
    server_name: String,
    downloads: PathBuf,
}

impl Client {
    /// Open one connection, fetch `requests` concurrently on it, close it
    async fn fetch_on_one_connection(&self, requests: &[Request]) -> Result<()> {
        let mut qlog = Qlog::create("client");
        qlog_started(&mut qlog, self.endpoint.local_addr(), self.remote);
        let conn = self
            .endpoint
            .connect(self.config.clone(), self.remote, &self.server_name)
            .map_err(|e| format!("connecting to {}: {e}", self.remote))?;
        let result = self.fetch_all(&conn, requests).await;
        close_and_flush(&conn).await;
        let outcome = match &result {
            Ok(()) => "done".to_owned(),
            Err(e) => e.clone(),
        };
        qlog_closed(&mut qlog, conn.stats(), &outcome);
        result
    }

    async fn fetch_all(&self, conn: &Connection, requests: &[Request]) -> Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let opener = Arc::new(tokio::sync::Mutex::new(()));
        // 0-RTT: every request goes out at once, in this task, so that all of them make it into
        // 0-RTT packets before the server's handshake flight brings 1-RTT keys. Without a
        // ticket (first connection) opening a stream simply waits for the handshake
        let early = self.config.transport.zero_rtt;
        if early {
            for request in requests {
                let target = download_path(&self.downloads, &request.path)?;
                let recv = send_request(conn, &opener, &request.path).await?;
                let path = request.path.clone();
                tasks.spawn(async move { download(recv, &path, &target).await });
            }
        } else {
            conn.handshake()
                .await
                .map_err(|e| format!("handshake with {}: {e}", self.remote))?;
        }
        // Without 0-RTT, the requests go concurrently once the handshake is done
        let concurrent = if early { &[][..] } else { requests };
        for request in concurrent {
            let target = download_path(&self.downloads, &request.path)?;
            let conn = conn.clone();
            let path = request.path.clone();
            let opener = opener.clone();
            // Each task waits for stream credit, so a server limit below the number of
            // requests is honoured by waiting for MAX_STREAMS
            tasks.spawn(async move { fetch(&conn, &opener, &path, &target).await });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| format!("download task: {e}"))??;
        }
        Ok(())
    }
}

/// How often a client blocked on stream credit looks again (see [`open_bi`])
const OPEN_RECHECK: Duration = Duration::from_millis(20);

/// Open a bidirectional stream, one task at a time, re-checking for credit periodically
///
/// The driver wakes a waiting `open_bi` only when the connection reports an event, and the core
/// reports none when a MAX_STREAMS frame alone raises the limit. When it arrives after the last
/// response, every waiter would sleep until the idle timeout. Cancelling the wait is harmless
/// (nothing is opened until it succeeds); the mutex keeps the retries to one task.
async fn open_bi(
    conn: &Connection,
    opener: &tokio::sync::Mutex<()>,
) -> std::result::Result<(SendStream, RecvStream), ConnectionError> {
    let _turn = opener.lock().await;
    loop {
        if let Ok(opened) = tokio::time::timeout(OPEN_RECHECK, conn.open_bi()).await {
            return opened;
        }
    }
}

async fn fetch(
    conn: &Connection,
    opener: &tokio::sync::Mutex<()>,
    path: &str,
    target: &Path,
) -> Result<()> {
    let recv = send_request(conn, opener, path).await?;
    download(recv, path, target).await
}

/// Open a stream and send `GET path` on it; the stream to read the response from
async fn send_request(
    conn: &Connection,
    opener: &tokio::sync::Mutex<()>,
    path: &str,
) -> Result<RecvStream> {
    let (mut send, recv) = open_bi(conn, opener)
        .await
        .map_err(|e| format!("opening a stream for {path}: {e}"))?;
    send.write_all(format!("GET {path}\r\n").as_bytes())
        .await
        .map_err(|e| format!("requesting {path}: {e}"))?;
    send.finish()
        .map_err(|e| format!("requesting {path}: {e}"))?;
    Ok(recv)
}

/// Store the response of a request in `target`
async fn download(mut recv: RecvStream, path: &str, target: &Path) -> Result<()> {
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let mut file = tokio::fs::File::create(target)
        .await
        .map_err(|e| format!("{}: {e}", target.display()))?;
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(n) = recv
        .read(&mut buf)
        .await
        .map_err(|e| format!("downloading {path}: {e}"))?
    {
        file.write_all(&buf[..n])
            .await
            .map_err(|e| format!("{}: {e}", target.display()))?;
    }
    file.flush()
        .await
        .map_err(|e| format!("{}: {e}", target.display()))
}

/// Close with NO_ERROR and give the driver a moment to put CONNECTION_CLOSE on the wire, so the
/// server sees a clean close instead of waiting for its idle timeout
async fn close_and_flush(conn: &Connection) {
    let sent_before = conn.stats().map_or(0, |s| s.udp_tx_datagrams);
    conn.close(0, b"");
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        match conn.stats() {
            Some(s) if s.udp_tx_datagrams > sent_before => return,
            None => return,
            Some(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// The `keyupdate` client, on the sans-IO core directly
///
/// The async driver's connection handle has no way to ask for a key update, while the core's
/// `Connection::initiate_key_update` does; this small single-connection loop (no GSO, no GRO)
/// reaches it. Everything else in the binary uses the driver.
mod keyupdate {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Instant;

    use quic_stack::config::ClientConfig;
    use quic_stack::{Dir, Endpoint, Event, RecvMeta, StreamId};

    use super::{
        download_path, endpoint_config, qlog_closed, qlog_started, Qlog, Request, Result, Role,
    };

    struct Download {
        path: String,
        file: std::fs::File,
    }

    pub(super) async fn fetch(
        bind: SocketAddr,
        remote: SocketAddr,
        server_name: &str,
        config: ClientConfig,
        requests: &[Request],
        downloads: &Path,
    ) -> Result<()> {
        let socket = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| format!("binding {bind}: {e}"))?;
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        let mut endpoint =
            Endpoint::new(Arc::new(endpoint_config(Role::Client, false)), None, seed);
        let handle = endpoint
            .connect(Instant::now(), config, remote, server_name)
            .map_err(|e| format!("connecting to {remote}: {e}"))?;
        let mut qlog = Qlog::create("client");
        if let Ok(local) = socket.local_addr() {
            qlog_started(&mut qlog, local, remote);
        }
        let result = run(&mut endpoint, handle, &socket, requests, downloads).await;
        let stats = endpoint.connection(handle).map(|c| c.stats());
        let outcome = match &result {
            Ok(()) => "done".to_owned(),
            Err(e) => e.clone(),
        };
        qlog_closed(&mut qlog, stats, &outcome);
        result
    }

    async fn run(
        endpoint: &mut Endpoint,
        handle: quic_stack::ConnectionHandle,
        socket: &tokio::net::UdpSocket,
        requests: &[Request],
        downloads: &Path,
    ) -> Result<()> {
        let mut pending: Vec<&Request> = requests.iter().rev().collect();
        let mut active: HashMap<StreamId, Download> = HashMap::new();
        let mut update_requested = false;
        let mut tx = Vec::with_capacity(1500);
        let mut rx = vec![0u8; 65536];
        let mut chunk = vec![0u8; 65536];
        loop {
            let now = Instant::now();
            let Some(conn) = endpoint.connection_mut(handle) else {
                return Err("connection vanished".into());
            };
            if let Some(reason) = conn.close_reason() {
                return Err(format!("connection lost: {reason}"));
            }
            if !conn.is_handshaking() {
                if !update_requested {
                    // The core performs it once the handshake is confirmed and a packet of the
                    // current phase was acknowledged: early, well within the first MB
                    conn.initiate_key_update();
                    update_requested = true;
                }
                // Open request streams while stream credit lasts
                while let Some(request) = pending.last() {
                    let Some(id) = conn.open(Dir::Bi) else {
                        break;
                    };
                    let line = format!("GET {}\r\n", request.path);
                    // A fresh stream takes a short request whole (far below any window)
                    let written = conn
                        .write(id, line.as_bytes())
                        .map_err(|e| format!("requesting {}: {e:?}", request.path))?;
                    if written != line.len() {
                        return Err(format!("requesting {}: request truncated", request.path));
                    }
                    conn.finish(id)
                        .map_err(|e| format!("requesting {}: {e:?}", request.path))?;
                    let target = download_path(downloads, &request.path)?;
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| format!("{}: {e}", parent.display()))?;
                    }
                    let file = std::fs::File::create(&target)
                        .map_err(|e| format!("{}: {e}", target.display()))?;
                    active.insert(
                        id,
                        Download {
                            path: request.path.clone(),
                            file,
                        },
                    );
                    pending.pop();
                }
                // Drain whatever arrived
                let mut finished = Vec::new();
                for (&id, download) in active.iter_mut() {
                    loop {
                        match conn.read(id, &mut chunk) {
                            Ok(Some(r)) => {
                                std::io::Write::write_all(&mut download.file, &chunk[..r.len])
                                    .map_err(|e| format!("storing {}: {e}", download.path))?;
                                if r.fin {
                                    finished.push(id);
                                    break;
                                }
                                if r.len == 0 {
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => return Err(format!("downloading {}: {e:?}", download.path)),
                        }
                    }
                }
                for id in finished {
                    active.remove(&id);
                }
                if pending.is_empty() && active.is_empty() {
                    let updates = conn.stats().key_updates;
                    conn.close(now, 0, b"");
                    flush(endpoint, socket, &mut tx).await;
                    if updates == 0 {
                        return Err("downloads complete but no key update happened".into());
                    }
                    return Ok(());
                }
            }
            flush(endpoint, socket, &mut tx).await;
            let timeout = endpoint.poll_timeout();
            let sleep = async {
                match timeout {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = socket.recv_from(&mut rx) => {
                    // Errors are ICMP reports (e.g. port unreachable); loss recovery copes
                    if let Ok((n, from)) = received {
                        let meta = RecvMeta { remote: from, local_ip: None, ecn: None };
                        endpoint.handle_datagram(Instant::now(), meta, &mut rx[..n]);
                    }
                }
                _ = sleep => endpoint.handle_timeout(Instant::now()),
            }
            // Events only wake handles in the driver; this loop polls the streams itself
            while let Some((_, event)) = endpoint.poll_event() {
                if let Event::ConnectionLost { reason } = event {
                    return Err(format!("connection lost: {reason}"));
                }
            }
        }
    }

    async fn flush(endpoint: &mut Endpoint, socket: &tokio::net::UdpSocket, tx: &mut Vec<u8>) {
        while let Some(t) = endpoint.poll_transmit(Instant::now(), 1, tx) {
            // A lost datagram is recovered by QUIC
            let _ = socket.send_to(&tx[..t.size], t.destination).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_traversal() {
        assert_eq!(parse_request(b"GET /a.bin\r\n").ok(), Some("/a.bin"));
        assert!(parse_request(b"POST /a\r\n").is_err());
        let root = Path::new("/www");
        assert_eq!(resolve(root, "/a/b").ok(), Some(PathBuf::from("/www/a/b")));
        assert!(resolve(root, "/../etc/passwd").is_err());
        assert!(resolve(root, "/a/../../x").is_err());
        assert!(resolve(root, "/").is_err());
    }

    #[test]
    fn urls() {
        let r = parse_url("https://server4:443/abc").ok();
        assert_eq!(
            r.map(|r| (r.host, r.port, r.path)),
            Some(("server4".into(), 443, "/abc".into()))
        );
        let r = parse_url("https://[::1]:4433/x").ok();
        assert_eq!(r.map(|r| (r.host, r.port)), Some(("::1".into(), 4433)));
        assert!(parse_url("http://a/b").is_err());
        assert!(parse_url("https://a:x/b").is_err());
    }

    #[test]
    fn cases() {
        assert!(case("handshake").is_some());
        assert_eq!(
            case("handshakeloss").map(|c| c.plan),
            Some(Plan::ConnectionPerRequest)
        );
        let z = case("zerortt").expect("zerortt is supported");
        assert!(z.plan == Plan::Resumption && z.zero_rtt && !z.preferred_address);
        let cm = case("connectionmigration").expect("connectionmigration is supported");
        assert!(cm.plan == Plan::Concurrent && cm.preferred_address && !cm.zero_rtt);
        assert!(case("http3").is_none());
        assert!(case("").is_none());
    }
}
