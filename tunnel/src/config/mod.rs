//! Configuration: a TOML file plus `QUICTUN_*` environment overrides, validated into typed structs
//!
//! Loading goes in three steps, so that every error can name the key it is about:
//! 1. the `config` crate merges the file and the environment (`QUICTUN_INTERFACE__MTU=1400`: a
//!    single `_` after the prefix, `__` between levels; `interface.address` and `tls.pin` take
//!    comma-separated lists) into one untyped tree;
//! 2. every key of the tree is checked against the schema, with a "did you mean" for typos (we
//!    walk the tree ourselves instead of relying on serde's `deny_unknown_fields`, whose message
//!    does not say where the key sits, e.g. `peer[1].allowd_ips`);
//! 3. each value is parsed and the whole is checked for consistency (roles, overlaps, MTU,
//!    readable certificate files).
//!
//! Every [`ConfigError`] displays as one line that names the key and says how to fix it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::carriage::CarriageMode;
use crate::cert::SpkiPin;
use crate::router::PeerSpec;

/// Default inner MTU: the IPv6 minimum, which fits almost every underlay path
pub const DEFAULT_MTU: u16 = 1280;
/// Default keepalive interval (NAT mappings last at least 30 s)
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);
/// Default idle timeout
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default Prometheus listen address
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9184";
/// Environment variable prefix
pub const ENV_PREFIX: &str = "QUICTUN";

/// A configuration error; `Display` is one line naming the key and the fix
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file itself cannot be read
    #[error("config: cannot read {path:?}: {reason} (pass the file with -c FILE; examples are in configs/)")]
    Read {
        /// File path
        path: PathBuf,
        /// OS reason
        reason: String,
    },
    /// TOML syntax error or an override that cannot be merged
    #[error("config: {source_name}: {reason}")]
    Syntax {
        /// File path or "environment"
        source_name: String,
        /// Parser message, on one line
        reason: String,
    },
    /// A key that the schema does not know
    #[error("config: unknown key {key:?}{hint}")]
    UnknownKey {
        /// Full path of the key, e.g. `peer[0].allowd_ips`
        key: String,
        /// ` (did you mean "..."?)` or empty
        hint: String,
    },
    /// A required key is absent
    #[error("config: {key} is missing ({fix})")]
    Missing {
        /// Full key path
        key: String,
        /// How to fix it
        fix: String,
    },
    /// A value that cannot be used
    #[error("config: {key}: {message}")]
    Invalid {
        /// Full key path
        key: String,
        /// What is wrong and how to fix it
        message: String,
    },
    /// A file named by the configuration cannot be read
    #[error("{key}: cannot read {path:?}: {reason} ({fix})")]
    File {
        /// Key naming the file, e.g. `tls.cert`
        key: String,
        /// Path as written in the configuration
        path: PathBuf,
        /// OS reason
        reason: String,
        /// How to fix it
        fix: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// An OS error without the trailing " (os error N)"
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Which end of the tunnel this is
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Listens (`interface.listen` set) and accepts peers
    Server,
    /// Connects to its peers' endpoints
    Client,
}

/// Inner MTU setting
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mtu {
    /// Follow the connection's max datagram size (PMTUD)
    Auto,
    /// Fixed MTU in bytes
    Fixed(u16),
}

impl Mtu {
    /// MTU to start with: fixed value, or the default until PMTUD reports
    pub fn initial(self) -> u16 {
        match self {
            Self::Auto => DEFAULT_MTU,
            Self::Fixed(m) => m,
        }
    }
}

/// `[interface]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceConfig {
    /// TUN interface name
    pub name: String,
    /// Addresses with prefix length, assigned to the TUN
    pub addresses: Vec<IpNet>,
    /// Inner MTU
    pub mtu: Mtu,
    /// UDP listen address (server only)
    pub listen: Option<SocketAddr>,
}

/// `[tls]`; paths are resolved against the configuration file's directory
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsConfig {
    /// Own certificate chain (PEM)
    pub cert: PathBuf,
    /// Own private key (PEM PKCS#8)
    pub key: PathBuf,
    /// CA that must have signed the peers' certificates
    pub ca: Option<PathBuf>,
    /// Accepted peer SPKI fingerprints
    pub pins: Vec<SpkiPin>,
}

/// One `[[peer]]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerConfig {
    /// Name (also expected in the peer certificate's DNS name for clients)
    pub name: String,
    /// Where to connect (clients); optional for servers
    pub endpoint: Option<SocketAddr>,
    /// Inner prefixes routed to and accepted from this peer
    pub allowed_ips: Vec<IpNet>,
    /// Carriage mode
    pub carriage: CarriageMode,
    /// Keepalive interval; `None` when off
    pub keepalive: Option<Duration>,
}

/// Congestion controller
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Congestion {
    /// CUBIC (RFC 9438)
    Cubic,
    /// NewReno (RFC 9002)
    NewReno,
    /// BBR (model-based; holds its rate under random loss, e.g. lossy radio uplinks)
    Bbr,
}

/// `[quic]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuicConfig {
    /// Idle timeout
    pub idle_timeout: Duration,
    /// Congestion controller
    pub congestion: Congestion,
    /// Streams per peer for stream carriage (flows hash over them)
    pub streams: usize,
}

/// `[metrics]`: present only when enabled
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricsConfig {
    /// Listen address of the Prometheus endpoint
    pub listen: SocketAddr,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogConfig {
    /// tracing env-filter directive, e.g. `info` or `tunnel=debug`
    pub level: String,
    /// JSON lines instead of text
    pub json: bool,
}

/// The whole validated configuration
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// `[interface]`
    pub interface: InterfaceConfig,
    /// `[tls]`
    pub tls: TlsConfig,
    /// `[[peer]]`, in file order (index = [`crate::router::PeerId`])
    pub peers: Vec<PeerConfig>,
    /// `[quic]`
    pub quic: QuicConfig,
    /// `[metrics]`, when enabled
    pub metrics: Option<MetricsConfig>,
    /// `[log]`
    pub log: LogConfig,
    /// `[control] socket`: the control socket path
    pub control_socket: PathBuf,
}

/// The keys each table accepts
const TOP_KEYS: &[&str] = &[
    "interface",
    "tls",
    "peer",
    "quic",
    "metrics",
    "log",
    "control",
];
const INTERFACE_KEYS: &[&str] = &["name", "address", "mtu", "listen"];
const TLS_KEYS: &[&str] = &["cert", "key", "ca", "pin"];
const PEER_KEYS: &[&str] = &["name", "endpoint", "allowed_ips", "carriage", "keepalive"];
const QUIC_KEYS: &[&str] = &["idle_timeout", "congestion", "streams"];
const METRICS_KEYS: &[&str] = &["listen", "enabled"];
const LOG_KEYS: &[&str] = &["level", "format"];
const CONTROL_KEYS: &[&str] = &["socket"];

impl Config {
    /// Load `path` with overrides from the process environment
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        // Every key lives in a section, so an override always has the `__` separator; other
        // QUICTUN_* variables (QUICTUN_THREADS, QUICTUN_SOCKD, ...) are not configuration
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| {
                k.strip_prefix(ENV_PREFIX)
                    .is_some_and(|rest| rest.contains("__"))
            })
            .collect();
        Self::load_with_env(path, env)
    }

    /// Load `path` with the given `QUICTUN_*` overrides instead of the process environment
    pub fn load_with_env(path: &Path, env: HashMap<String, String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            reason: io_reason(&e),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, &path.display().to_string(), base, env)
    }

    /// Parse TOML `text` (named `source_name` in errors) with `env` overrides; relative paths are
    /// resolved against `base_dir`
    pub fn from_toml(
        text: &str,
        source_name: &str,
        base_dir: &Path,
        env: HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let tree = merge(text, source_name, env)?;
        check_keys(&tree)?;
        parse(&tree, base_dir)
    }

    /// Server or client, from whether `interface.listen` is set
    pub fn role(&self) -> Role {
        if self.interface.listen.is_some() {
            Role::Server
        } else {
            Role::Client
        }
    }

    /// A router for these peers at the initial MTU
    pub fn router(&self) -> crate::router::Router {
        crate::router::Router::new(
            self.router_peers(),
            usize::from(self.interface.mtu.initial()),
        )
    }

    /// The peers in the router's terms
    pub fn router_peers(&self) -> Vec<PeerSpec> {
        self.peers
            .iter()
            .map(|p| PeerSpec {
                name: p.name.clone(),
                allowed_ips: p.allowed_ips.clone(),
                carriage: p.carriage,
            })
            .collect()
    }
}

/// Merge file and environment into one JSON-like tree
fn merge(
    text: &str,
    source_name: &str,
    env: HashMap<String, String>,
) -> Result<Value, ConfigError> {
    let env_source = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("interface.address")
        .with_list_parse_key("tls.pin")
        .source(Some(env.into_iter().collect()));
    let built = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(env_source)
        .build()
        .map_err(|e| ConfigError::Syntax {
            source_name: source_name.to_string(),
            reason: one_line(&e.to_string()),
        })?;
    built
        .try_deserialize::<Value>()
        .map_err(|e| ConfigError::Syntax {
            source_name: source_name.to_string(),
            reason: one_line(&e.to_string()),
        })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Levenshtein distance, for "did you mean"
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggest(key: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d <= 2.max(key.len() / 3) => format!(" (did you mean {k:?}?)"),
        _ => {
            let mut s = String::from(" (known keys: ");
            for (i, k) in known.iter().enumerate() {
                let _ = write!(s, "{}{k}", if i == 0 { "" } else { ", " });
            }
            s.push(')');
            s
        }
    }
}

fn check_table(v: &Value, path: &str, known: &[&str]) -> Result<(), ConfigError> {
    let Some(map) = v.as_object() else {
        return Err(ConfigError::invalid(
            path,
            format!("must be a table (write it as [{path}] with keys below it)"),
        ));
    };
    for k in map.keys() {
        if !known.contains(&k.as_str()) {
            let key = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            return Err(ConfigError::UnknownKey {
                key,
                hint: suggest(k, known),
            });
        }
    }
    Ok(())
}

fn check_keys(tree: &Value) -> Result<(), ConfigError> {
    check_table(tree, "", TOP_KEYS)?;
    for (name, keys) in [
        ("interface", INTERFACE_KEYS),
        ("tls", TLS_KEYS),
        ("quic", QUIC_KEYS),
        ("metrics", METRICS_KEYS),
        ("log", LOG_KEYS),
        ("control", CONTROL_KEYS),
    ] {
        if let Some(t) = tree.get(name) {
            check_table(t, name, keys)?;
        }
    }
    match tree.get("peer") {
        None => {}
        Some(Value::Array(peers)) => {
            for (i, p) in peers.iter().enumerate() {
                check_table(p, &format!("peer[{i}]"), PEER_KEYS)?;
            }
        }
        Some(_) => {
            return Err(ConfigError::invalid(
                "peer",
                "must be an array of tables (write each peer as [[peer]])",
            ))
        }
    }
    Ok(())
}

/// Typed accessors over one table, naming keys as `prefix.key`
struct Table<'a> {
    map: Option<&'a Map<String, Value>>,
    prefix: String,
}

impl<'a> Table<'a> {
    fn new(v: Option<&'a Value>, prefix: impl Into<String>) -> Self {
        Self {
            map: v.and_then(Value::as_object),
            prefix: prefix.into(),
        }
    }

    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.prefix)
    }

    fn get(&self, k: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(k))
    }

    /// A string value; numbers and booleans are accepted as their text (env overrides arrive
    /// parsed)
    fn str(&self, k: &str) -> Result<Option<String>, ConfigError> {
        match self.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(ConfigError::invalid(
                self.key(k),
                "must be a single value, not a list or table (quote it: key = \"value\")",
            )),
        }
    }

    fn required_str(&self, k: &str, fix: &str) -> Result<String, ConfigError> {
        self.str(k)?.ok_or_else(|| ConfigError::Missing {
            key: self.key(k),
            fix: fix.to_string(),
        })
    }

    /// A list of strings; a single string counts as a one-element list
    fn list(&self, k: &str) -> Result<Vec<String>, ConfigError> {
        match self.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(ConfigError::invalid(
                        format!("{}[{i}]", self.key(k)),
                        "must be a quoted string",
                    )),
                })
                .collect(),
            Some(_) => Err(ConfigError::invalid(
                self.key(k),
                "must be a list of quoted strings, like [\"a\", \"b\"]",
            )),
        }
    }

    fn duration(&self, k: &str, default: Duration) -> Result<Option<Duration>, ConfigError> {
        let Some(s) = self.str(k)? else {
            return Ok(Some(default));
        };
        let s = s.trim();
        if matches!(s, "off" | "0" | "none" | "false") {
            return Ok(None);
        }
        match humantime::parse_duration(s) {
            Ok(d) if d.is_zero() => Ok(None),
            Ok(d) => Ok(Some(d)),
            Err(_) => Err(ConfigError::invalid(
                self.key(k),
                format!("{s:?} is not a duration (write it like \"15s\", \"2m\" or \"off\")"),
            )),
        }
    }
}

fn parse_net(s: &str, key: &str) -> Result<IpNet, ConfigError> {
    let t = s.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "{s:?} has host bits set (write {} for the network, or {}/{} for one host)",
                    net.trunc(),
                    net.addr(),
                    net.max_prefix_len()
                ),
            ));
        }
        return Ok(net);
    }
    if let Ok(addr) = t.parse::<std::net::IpAddr>() {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        return Err(ConfigError::invalid(
            key,
            format!("{s:?} has no prefix length (write {addr}/{len} for one host)"),
        ));
    }
    Err(ConfigError::invalid(
        key,
        format!("{s:?} is not a CIDR prefix (write it like 198.19.0.2/32 or fd00:19::2/128)"),
    ))
}

fn parse_socket_addr(s: &str, key: &str, example: &str) -> Result<SocketAddr, ConfigError> {
    s.trim().parse().map_err(|_| {
        ConfigError::invalid(
            key,
            format!(
                "{s:?} is not an address:port (write it like {example}; IPv6 as [fd00::1]:4433)"
            ),
        )
    })
}

/// Resolve `p` against the configuration directory and check that it is readable
fn tls_file(key: &str, p: &str, base: &Path, fix: &str) -> Result<PathBuf, ConfigError> {
    let path = base.join(p);
    match std::fs::File::open(&path) {
        Ok(_) => Ok(path),
        Err(e) => Err(ConfigError::File {
            key: key.to_string(),
            path: PathBuf::from(p),
            reason: io_reason(&e),
            fix: fix.to_string(),
        }),
    }
}

fn parse(tree: &Value, base: &Path) -> Result<Config, ConfigError> {
    let interface = parse_interface(tree)?;
    let tls = parse_tls(tree, base)?;
    let peers = parse_peers(tree, interface.listen.is_none())?;

    // MTU bounds depend on whether the tunnel carries IPv6 at all
    let carries_v6 = interface
        .addresses
        .iter()
        .any(|n| matches!(n, IpNet::V6(_)))
        || peers
            .iter()
            .flat_map(|p| &p.allowed_ips)
            .any(|n| matches!(n, IpNet::V6(_)));
    if let Mtu::Fixed(m) = interface.mtu {
        let min = if carries_v6 { 1280 } else { 576 };
        if m < min {
            let why = if carries_v6 {
                "the IPv6 minimum; this tunnel carries IPv6"
            } else {
                "the IPv4 minimum"
            };
            return Err(ConfigError::invalid(
                "interface.mtu",
                format!("{m} is below {min}, {why} (use {min} or more, or \"auto\")"),
            ));
        }
    }

    let quic_t = Table::new(tree.get("quic"), "quic");
    let idle_timeout = quic_t
        .duration("idle_timeout", DEFAULT_IDLE_TIMEOUT)?
        .ok_or_else(|| {
            ConfigError::invalid(
                "quic.idle_timeout",
                "cannot be off (a dead peer would never be noticed; use e.g. \"60s\")",
            )
        })?;
    let congestion = match quic_t
        .str("congestion")?
        .as_deref()
        .map(str::to_ascii_lowercase)
    {
        None => Congestion::Cubic,
        Some(s) if s == "cubic" => Congestion::Cubic,
        Some(s) if s == "newreno" || s == "new_reno" || s == "reno" => Congestion::NewReno,
        Some(s) if s == "bbr" => Congestion::Bbr,
        Some(s) => {
            return Err(ConfigError::invalid(
                "quic.congestion",
                format!(
                    "{s:?} is not a congestion controller (use \"cubic\", \"newreno\" or \"bbr\")"
                ),
            ))
        }
    };
    let streams = match quic_t.str("streams")? {
        None => 4,
        Some(s) => match s.parse::<usize>() {
            Ok(n @ 1..=64) => n,
            _ => {
                return Err(ConfigError::invalid(
                    "quic.streams",
                    format!("{s:?} is not a stream count (use a number from 1 to 64; default 4)"),
                ))
            }
        },
    };

    let metrics = match tree.get("metrics") {
        None => None,
        Some(m) => {
            let t = Table::new(Some(m), "metrics");
            let enabled = match t.str("enabled")?.as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(s) => {
                    return Err(ConfigError::invalid(
                        "metrics.enabled",
                        format!("{s:?} is not a boolean (use true or false)"),
                    ))
                }
            };
            let listen = t
                .str("listen")?
                .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.to_string());
            let listen = parse_socket_addr(&listen, "metrics.listen", DEFAULT_METRICS_LISTEN)?;
            enabled.then_some(MetricsConfig { listen })
        }
    };

    let log_t = Table::new(tree.get("log"), "log");
    let level = log_t.str("level")?.unwrap_or_else(|| "info".to_string());
    if level.trim().is_empty() {
        return Err(ConfigError::invalid(
            "log.level",
            "is empty (use error, warn, info, debug, trace or a filter like tunnel=debug)",
        ));
    }
    let json = match log_t.str("format")?.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(s) => {
            return Err(ConfigError::invalid(
                "log.format",
                format!("{s:?} is not a log format (use \"text\" or \"json\")"),
            ))
        }
    };

    let control_t = Table::new(tree.get("control"), "control");
    let control_socket = control_t
        .str("socket")?
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::control::default_socket_path(&interface.name));

    Ok(Config {
        interface,
        tls,
        peers,
        quic: QuicConfig {
            idle_timeout,
            congestion,
            streams,
        },
        metrics,
        log: LogConfig { level, json },
        control_socket,
    })
}

fn parse_interface(tree: &Value) -> Result<InterfaceConfig, ConfigError> {
    if tree.get("interface").is_none() {
        return Err(ConfigError::Missing {
            key: "interface".into(),
            fix: "add an [interface] table with at least address = [\"198.19.0.1/24\"]".into(),
        });
    }
    let t = Table::new(tree.get("interface"), "interface");
    let name = t.str("name")?.unwrap_or_else(|| "qt0".to_string());
    if name.is_empty()
        || name.len() > 15
        || name.contains(['/', ' ', '\t', '\n'])
        || name == "."
        || name == ".."
    {
        return Err(ConfigError::invalid(
            "interface.name",
            format!("{name:?} is not a valid interface name (1 to 15 characters, no '/' or spaces, like \"qt0\")"),
        ));
    }
    let raw = t.list("address")?;
    if raw.is_empty() {
        return Err(ConfigError::Missing {
            key: "interface.address".into(),
            fix: "give the tunnel's own address, like address = [\"198.19.0.1/24\", \"fd00:19::1/64\"]".into(),
        });
    }
    let mut addresses = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let key = format!("interface.address[{i}]");
        // The interface address is a host address inside its subnet, so host bits are expected
        let net = s.trim().parse::<IpNet>().map_err(|_| {
            ConfigError::invalid(
                &key,
                format!("{s:?} is not an address with prefix length (write it like 198.19.0.1/24)"),
            )
        })?;
        addresses.push(net);
    }
    let mtu = match t.str("mtu")? {
        None => Mtu::Fixed(DEFAULT_MTU),
        Some(s) if s.eq_ignore_ascii_case("auto") => Mtu::Auto,
        Some(s) => match s.trim().parse::<u32>() {
            Ok(m) if m > 65535 => {
                return Err(ConfigError::invalid(
                    "interface.mtu",
                    format!(
                        "{m} is above 65535, the largest IP packet (use 1280..=65535 or \"auto\")"
                    ),
                ))
            }
            Ok(m) => Mtu::Fixed(m as u16),
            Err(_) => {
                return Err(ConfigError::invalid(
                    "interface.mtu",
                    format!("{s:?} is not an MTU (use a number like 1280, or \"auto\")"),
                ))
            }
        },
    };
    let listen = t
        .str("listen")?
        .map(|s| parse_socket_addr(&s, "interface.listen", "0.0.0.0:4433"))
        .transpose()?;
    Ok(InterfaceConfig {
        name,
        addresses,
        mtu,
        listen,
    })
}

fn parse_tls(tree: &Value, base: &Path) -> Result<TlsConfig, ConfigError> {
    if tree.get("tls").is_none() {
        return Err(ConfigError::Missing {
            key: "tls".into(),
            fix: "add a [tls] table with cert, key and ca; create them with: quictun cert --out DIR --ca".into(),
        });
    }
    let t = Table::new(tree.get("tls"), "tls");
    let create = "create one with: quictun cert --out DIR --name NAME";
    let cert = t.required_str("cert", create)?;
    let cert = tls_file("tls.cert", &cert, base, create)?;
    let key = t.required_str("key", create)?;
    let key = tls_file("tls.key", &key, base, create)?;
    let ca = t
        .str("ca")?
        .map(|p| {
            tls_file(
                "tls.ca",
                &p,
                base,
                "create one with: quictun cert --out DIR --ca",
            )
        })
        .transpose()?;
    let mut pins = Vec::new();
    for (i, p) in t.list("pin")?.iter().enumerate() {
        let pin = p.parse::<SpkiPin>().map_err(|_| {
            ConfigError::invalid(
                format!("tls.pin[{i}]"),
                format!("{p:?} is not a pin (write \"sha256:\" and 64 hex digits, as printed by: quictun cert --fingerprint FILE)"),
            )
        })?;
        pins.push(pin);
    }
    if ca.is_none() && pins.is_empty() {
        return Err(ConfigError::Missing {
            key: "tls.ca".into(),
            fix: "peers must be authenticated: set ca = \"ca.crt\" or pin = [\"sha256:...\"]"
                .into(),
        });
    }
    Ok(TlsConfig {
        cert,
        key,
        ca,
        pins,
    })
}

fn parse_peers(tree: &Value, is_client: bool) -> Result<Vec<PeerConfig>, ConfigError> {
    let empty = Vec::new();
    let raw = tree.get("peer").and_then(Value::as_array).unwrap_or(&empty);
    if raw.is_empty() {
        return Err(ConfigError::Missing {
            key: "peer".into(),
            fix: "add at least one [[peer]] with name and allowed_ips".into(),
        });
    }
    let mut peers: Vec<PeerConfig> = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        let prefix = format!("peer[{i}]");
        let t = Table::new(Some(v), prefix.clone());
        let name = t.required_str(
            "name",
            "give each peer a unique name, like name = \"laptop\"",
        )?;
        if let Some(j) = peers.iter().position(|p| p.name == name) {
            return Err(ConfigError::invalid(
                t.key("name"),
                format!("{name:?} is already the name of peer[{j}] (peer names must be unique)"),
            ));
        }
        let endpoint = t
            .str("endpoint")?
            .map(|s| parse_socket_addr(&s, &t.key("endpoint"), "198.18.0.1:4433"))
            .transpose()?;
        if is_client && endpoint.is_none() {
            return Err(ConfigError::Missing {
                key: t.key("endpoint"),
                fix: "a client must know where its server is: endpoint = \"198.18.0.1:4433\"; or set interface.listen to make this a server".into(),
            });
        }
        let raw_ips = t.list("allowed_ips")?;
        if raw_ips.is_empty() {
            return Err(ConfigError::Missing {
                key: t.key("allowed_ips"),
                fix: "list the inner prefixes this peer may use, like allowed_ips = [\"198.19.0.2/32\"]".into(),
            });
        }
        let mut allowed_ips = Vec::with_capacity(raw_ips.len());
        for (k, s) in raw_ips.iter().enumerate() {
            let key = format!("{prefix}.allowed_ips[{k}]");
            let net = parse_net(s, &key)?;
            // Each inner address must belong to one peer only, or routing and the source check
            // would disagree about who owns it
            for (j, other) in peers.iter().enumerate() {
                if let Some(o) = other
                    .allowed_ips
                    .iter()
                    .find(|o| o.contains(&net.network()) || net.contains(&o.network()))
                {
                    return Err(ConfigError::invalid(
                        key,
                        format!(
                            "{s:?} overlaps {o} of peer[{j}] ({:?}) (each inner address must belong to exactly one peer)",
                            other.name
                        ),
                    ));
                }
            }
            allowed_ips.push(net);
        }
        let carriage = match t.str("carriage")? {
            None => CarriageMode::Datagram,
            Some(s) => s.parse::<CarriageMode>().map_err(|()| {
                ConfigError::invalid(
                    t.key("carriage"),
                    format!(
                        "{s:?} is not a carriage mode (use \"datagram\", \"stream\" or \"auto\")"
                    ),
                )
            })?,
        };
        let keepalive = t.duration("keepalive", DEFAULT_KEEPALIVE)?;
        peers.push(PeerConfig {
            name,
            endpoint,
            allowed_ips,
            carriage,
            keepalive,
        });
    }
    Ok(peers)
}

/// Fuzz body: any text must load to a config or a one-line error, never panic
#[doc(hidden)]
pub fn fuzz_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A base directory that does not exist: file checks fail cleanly instead of touching disk
    let base = Path::new("/nonexistent-quictun-fuzz");
    if let Err(e) = Config::from_toml(text, "fuzz.toml", base, HashMap::new()) {
        assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
    }
}

#[cfg(test)]
mod tests;
