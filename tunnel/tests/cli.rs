//! The quictun binary end to end: certificates, config validation, exit codes

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn quictun(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quictun"))
        .args(args)
        .current_dir(dir)
        .env_remove("QUICTUN_INTERFACE__MTU")
        .output()
        .expect("run quictun")
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("quictun-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn cert_then_up_check() {
    let d = temp_dir("flow");
    let o = quictun(&["cert", "--out", "pki", "--ca"], &d);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = quictun(
        &[
            "cert",
            "--out",
            "pki",
            "--name",
            "server",
            "--dns",
            "server",
            "--ip",
            "198.18.0.1",
        ],
        &d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // refuses to overwrite
    let o = quictun(&["cert", "--out", "pki", "--ca"], &d);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.starts_with("quictun: cert: ") && e.contains("--force") && e.lines().count() == 1,
        "{e}"
    );

    let o = quictun(&["cert", "--fingerprint", "pki/server.crt"], &d);
    assert!(o.status.success());
    let pin = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(pin.starts_with("sha256:") && pin.len() == 71, "{pin}");

    let cfg = r#"
[interface]
address = ["198.19.0.1/24"]
listen = "127.0.0.1:4433"
[tls]
cert = "pki/server.crt"
key = "pki/server.key"
ca = "pki/ca.crt"
[[peer]]
name = "laptop"
allowed_ips = ["198.19.0.2/32"]
"#;
    std::fs::write(d.join("server.toml"), cfg).unwrap();
    let o = quictun(&["up", "-c", "server.toml", "--check"], &d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&pin));
    // without --check: validated, then the TUN needs privileges. As root this would bring a
    // real tunnel up in the test's namespace, which the namespace tests do instead.
    if !is_root() {
        let o = quictun(&["up", "-c", "server.toml"], &d);
        assert_eq!(o.status.code(), Some(3));
        assert!(
            stderr(&o).contains("permission denied: run as root"),
            "{}",
            stderr(&o)
        );
    }

    // env override reaches validation: MTU too small for IPv6? (v4-only here: 500 < 576)
    let o = Command::new(env!("CARGO_BIN_EXE_quictun"))
        .args(["up", "-c", "server.toml", "--check"])
        .current_dir(&d)
        .env("QUICTUN_INTERFACE__MTU", "500")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("quictun: config: interface.mtu: 500 is below 576"),
        "{}",
        stderr(&o)
    );

    // broken key file: one-line config error
    std::fs::write(d.join("pki/server.key"), "garbage").unwrap();
    let o = quictun(&["up", "-c", "server.toml", "--check"], &d);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("tls.key: ") && e.contains("holds no private key") && e.lines().count() == 1,
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn exit_codes() {
    let d = temp_dir("codes");
    let o = quictun(&["up", "-c", "missing.toml"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "quictun: config: cannot read \"missing.toml\": No such file or directory (pass the file with -c FILE; examples are in configs/)"
    );
    let o = quictun(&["frobnicate"], &d);
    assert_eq!(o.status.code(), Some(2));
    // migrate is wired through the control socket: without a daemon it names the socket
    let o = quictun(
        &["migrate", "--to", "198.18.0.9", "--socket", "nope.sock"],
        &d,
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));
    // As root the demo would run for real (it has its own end-to-end check in the README)
    if !is_root() {
        let o = quictun(&["demo"], &d);
        assert_eq!(o.status.code(), Some(3));
        assert!(stderr(&o).contains("run it with sudo"), "{}", stderr(&o));
    }
    let o = quictun(&["status", "--socket", "nope.sock"], &d);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("is `quictun up` running"),
        "{}",
        stderr(&o)
    );
    for cmd in ["up", "status", "cert", "demo", "migrate", "sockd"] {
        let o = quictun(&[cmd, "--help"], &d);
        assert!(o.status.success(), "{cmd} --help");
    }
    let _ = std::fs::remove_dir_all(&d);
}
