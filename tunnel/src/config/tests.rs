use super::*;
use crate::cert::tests_support::temp_dir;

/// A directory with empty cert/key/ca files so file checks pass
fn dir_with_files(tag: &str) -> PathBuf {
    let d = temp_dir(tag);
    for f in [
        "server.crt",
        "server.key",
        "ca.crt",
        "laptop.crt",
        "laptop.key",
    ] {
        std::fs::write(d.join(f), "").unwrap();
    }
    d
}

const SERVER: &str = r#"
[interface]
name = "qt0"
address = ["198.19.0.1/24", "fd00:19::1/64"]
mtu = 1280
listen = "0.0.0.0:4433"

[tls]
cert = "server.crt"
key = "server.key"
ca = "ca.crt"

[[peer]]
name = "laptop"
allowed_ips = ["198.19.0.2/32", "fd00:19::2/128"]
carriage = "datagram"
keepalive = "15s"

[[peer]]
name = "site"
allowed_ips = ["198.19.1.0/24"]
carriage = "auto"
keepalive = "off"
"#;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let d = dir_with_files("cfg");
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let r = Config::from_toml(text, "test.toml", &d, env);
    let _ = std::fs::remove_dir_all(&d);
    r
}

fn err(text: &str) -> String {
    let e = load(text, &[]).unwrap_err().to_string();
    assert!(!e.contains('\n'), "error must be one line: {e}");
    e
}

#[test]
fn parses_server() {
    let c = load(SERVER, &[]).unwrap();
    assert_eq!(c.role(), Role::Server);
    assert_eq!(c.interface.name, "qt0");
    assert_eq!(c.interface.addresses.len(), 2);
    assert_eq!(c.interface.mtu, Mtu::Fixed(1280));
    assert_eq!(c.peers.len(), 2);
    assert_eq!(c.peers[0].keepalive, Some(Duration::from_secs(15)));
    assert_eq!(c.peers[1].keepalive, None);
    assert_eq!(c.peers[1].carriage, CarriageMode::Auto);
    assert_eq!(c.quic.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    assert_eq!(c.quic.congestion, Congestion::Cubic);
    assert!(c.metrics.is_none());
    assert_eq!(c.control_socket, PathBuf::from("/run/quictun/qt0.sock"));
    assert!(c.tls.cert.ends_with("server.crt") && c.tls.cert.is_absolute());
    assert_eq!(c.router_peers()[1].name, "site");
    let r = c.router();
    assert_eq!(r.tunnel_mtu(), 1280);
    assert_eq!(
        r.lookup("198.19.1.9".parse().unwrap()),
        Some(crate::router::PeerId(1))
    );
    let o = crate::daemon::DaemonOptions::from_config(&c);
    assert_eq!(o.local_v4, Some("198.19.0.1".parse().unwrap()));
    assert_eq!(o.local_v6, Some("fd00:19::1".parse().unwrap()));
}

#[test]
fn env_overrides() {
    let c = load(
        SERVER,
        &[
            ("QUICTUN_INTERFACE__MTU", "1400"),
            ("QUICTUN_INTERFACE__NAME", "qt9"),
            ("QUICTUN_INTERFACE__ADDRESS", "198.19.5.1/24,fd00:5::1/64"),
            ("QUICTUN_QUIC__CONGESTION", "newreno"),
            ("QUICTUN_METRICS__LISTEN", "127.0.0.1:9999"),
            ("OTHER_VAR", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(c.interface.mtu, Mtu::Fixed(1400));
    assert_eq!(c.interface.name, "qt9");
    assert_eq!(
        c.interface.addresses[0],
        "198.19.5.1/24".parse::<IpNet>().unwrap()
    );
    assert_eq!(c.interface.addresses.len(), 2);
    assert_eq!(c.quic.congestion, Congestion::NewReno);
    assert_eq!(c.metrics.unwrap().listen, "127.0.0.1:9999".parse().unwrap());
    let c = load(SERVER, &[("QUICTUN_INTERFACE__MTU", "auto")]).unwrap();
    assert_eq!(c.interface.mtu, Mtu::Auto);
    let e = load(SERVER, &[("QUICTUN_INTERFACE__MTU", "100")]).unwrap_err();
    assert!(e.to_string().contains("interface.mtu"), "{e}");
    let e = load(SERVER, &[("QUICTUN_INTERFACE__MTUU", "1400")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"config: unknown key "interface.mtuu" (did you mean "mtu"?)"#
    );
}

#[test]
fn unknown_keys_suggest() {
    let e = err(&SERVER.replace("[interface]", "[interfce]"));
    assert_eq!(
        e,
        r#"config: unknown key "interfce" (did you mean "interface"?)"#
    );
    let e = err(&SERVER.replace("carriage = \"auto\"", "carriag = \"auto\""));
    assert_eq!(
        e,
        r#"config: unknown key "peer[1].carriag" (did you mean "carriage"?)"#
    );
    let e = err(&format!("zzzzzzzz = 1\n{SERVER}"));
    assert!(e.contains("known keys: interface"), "{e}");
}

#[test]
fn bad_cidr_names_key_and_fix() {
    let e = err(&SERVER.replace("\"fd00:19::2/128\"]", "\"198.19.0.300/32\"]"));
    assert_eq!(
        e,
        r#"config: peer[0].allowed_ips[1]: "198.19.0.300/32" is not a CIDR prefix (write it like 198.19.0.2/32 or fd00:19::2/128)"#
    );
    let e = err(&SERVER.replace("\"198.19.0.2/32\"", "\"198.19.0.2\""));
    assert!(e.contains("no prefix length (write 198.19.0.2/32"), "{e}");
    let e = err(&SERVER.replace("\"198.19.1.0/24\"", "\"198.19.1.7/24\""));
    assert!(e.contains("host bits set (write 198.19.1.0/24"), "{e}");
}

#[test]
fn overlapping_allowed_ips() {
    let e = err(&SERVER.replace("\"198.19.1.0/24\"", "\"198.19.0.0/24\""));
    assert!(e.starts_with("config: peer[1].allowed_ips[0]: \"198.19.0.0/24\" overlaps 198.19.0.2/32 of peer[0] (\"laptop\")"), "{e}");
}

#[test]
fn missing_tls_file() {
    let d = temp_dir("cfgmissing");
    let e = Config::from_toml(SERVER, "t.toml", &d, HashMap::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"tls.cert: cannot read "server.crt": No such file or directory (create one with: quictun cert --out DIR --name NAME)"#
    );
    let _ = std::fs::remove_dir_all(&d);
    let e = err(&SERVER.replace("ca = \"ca.crt\"", ""));
    assert!(
        e.starts_with("config: tls.ca is missing (peers must be authenticated"),
        "{e}"
    );
    // a pin instead of a CA is fine
    let pin = format!("pin = [\"sha256:{}\"]", "ab".repeat(32));
    assert!(load(&SERVER.replace("ca = \"ca.crt\"", &pin), &[]).is_ok());
    let e = err(&SERVER.replace("ca = \"ca.crt\"", "pin = [\"sha256:xyz\"]"));
    assert!(e.contains("tls.pin[0]"), "{e}");
}

#[test]
fn client_needs_endpoint() {
    let client = SERVER.replace("listen = \"0.0.0.0:4433\"", "");
    let e = err(&client);
    assert!(
        e.starts_with(
            "config: peer[0].endpoint is missing (a client must know where its server is"
        ),
        "{e}"
    );
    let client = client.replace(
        "name = \"laptop\"",
        "name = \"laptop\"\nendpoint = \"198.18.0.1:4433\"",
    );
    let client = client.replace(
        "name = \"site\"",
        "name = \"site\"\nendpoint = \"[fd00::1]:4433\"",
    );
    let c = load(&client, &[]).unwrap();
    assert_eq!(c.role(), Role::Client);
    assert_eq!(
        c.peers[0].endpoint,
        Some("198.18.0.1:4433".parse().unwrap())
    );
    let e = err(&client.replace("198.18.0.1:4433", "198.18.0.1"));
    assert!(
        e.contains("peer[0].endpoint: \"198.18.0.1\" is not an address:port"),
        "{e}"
    );
}

#[test]
fn mtu_bounds() {
    let e = err(&SERVER.replace("mtu = 1280", "mtu = 1000"));
    assert_eq!(
        e,
        "config: interface.mtu: 1000 is below 1280, the IPv6 minimum; this tunnel carries IPv6 (use 1280 or more, or \"auto\")"
    );
    let e = err(&SERVER.replace("mtu = 1280", "mtu = 70000"));
    assert!(e.contains("above 65535"), "{e}");
    let e = err(&SERVER.replace("mtu = 1280", "mtu = \"big\""));
    assert!(e.contains("is not an MTU"), "{e}");
    // v4-only tunnel: 576 is the floor
    let v4 = SERVER
        .replace(", \"fd00:19::1/64\"", "")
        .replace(", \"fd00:19::2/128\"", "");
    assert_eq!(
        load(&v4.replace("mtu = 1280", "mtu = 576"), &[])
            .unwrap()
            .interface
            .mtu,
        Mtu::Fixed(576)
    );
    let e = err(&v4.replace("mtu = 1280", "mtu = 575"));
    assert!(e.contains("below 576, the IPv4 minimum"), "{e}");
}

#[test]
fn other_value_errors() {
    let e = err(&SERVER.replace("carriage = \"auto\"", "carriage = \"udp\""));
    assert!(
        e.contains("peer[1].carriage: \"udp\" is not a carriage mode"),
        "{e}"
    );
    let e = err(&SERVER.replace("keepalive = \"15s\"", "keepalive = \"soon\""));
    assert!(
        e.contains("peer[0].keepalive: \"soon\" is not a duration"),
        "{e}"
    );
    let e = err(&SERVER.replace("name = \"site\"", "name = \"laptop\""));
    assert!(
        e.contains("peer[1].name: \"laptop\" is already the name of peer[0]"),
        "{e}"
    );
    let e = err(&format!("{SERVER}\n[quic]\ncongestion = \"vegas\"\n"));
    assert!(e.contains("quic.congestion"), "{e}");
    let e = err(&format!("{SERVER}\n[metrics]\nlisten = \"localhost\"\n"));
    assert!(e.contains("metrics.listen"), "{e}");
    let e = err("[interface\n");
    assert!(e.starts_with("config: test.toml: "), "{e}");
    let e = err("[interface]\naddress = [\"198.19.0.1/24\"]\n");
    assert!(e.starts_with("config: tls is missing"), "{e}");
    let e = err(&SERVER.replace("name = \"qt0\"", "name = \"a/very/long/name\""));
    assert!(e.contains("interface.name"), "{e}");
    let c = load(&format!("{SERVER}\n[metrics]\n[log]\nlevel = \"debug\"\nformat = \"json\"\n[control]\nsocket = \"/tmp/q.sock\"\n"), &[]).unwrap();
    assert_eq!(
        c.metrics.unwrap().listen,
        DEFAULT_METRICS_LISTEN.parse().unwrap()
    );
    assert!(c.log.json);
    assert_eq!(c.control_socket, PathBuf::from("/tmp/q.sock"));
}

#[test]
fn load_reports_missing_file() {
    let e =
        Config::load_with_env(Path::new("/nonexistent/quictun.toml"), HashMap::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "config: cannot read \"/nonexistent/quictun.toml\": No such file or directory (pass the file with -c FILE; examples are in configs/)"
    );
}

/// Every example in configs/ parses (with its TLS files stubbed)
#[test]
fn example_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let d = temp_dir("examples");
        // stub every file the example names
        let tree = merge(&text, "x", HashMap::new()).unwrap();
        if let Some(tls) = tree.get("tls").and_then(Value::as_object) {
            for k in ["cert", "key", "ca"] {
                if let Some(Value::String(f)) = tls.get(k) {
                    let p = d.join(f);
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(p, "").unwrap();
                }
            }
        }
        let r = Config::from_toml(&text, &path.display().to_string(), &d, HashMap::new());
        let _ = std::fs::remove_dir_all(&d);
        if let Err(e) = r {
            panic!("{}: {e}", path.display());
        }
        n += 1;
    }
    assert!(n >= 5, "expected at least 5 example configs, found {n}");
}

proptest::proptest! {
    #[test]
    fn fuzz_config_body(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        fuzz_config(&data);
    }

    /// Mutations of a valid file: flip one character at a time
    #[test]
    fn fuzz_config_mutations(pos in 0usize..700, ch in proptest::prelude::any::<char>()) {
        let mut text: Vec<char> = SERVER.chars().collect();
        let i = pos % text.len();
        text[i] = ch;
        let s: String = text.into_iter().collect();
        fuzz_config(s.as_bytes());
    }
}
