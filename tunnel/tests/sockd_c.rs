//! C programs that use only the kernel QUIC socket API, run through `libquic_sock.so` against
//! the REAL service: the `quictun sockd` binary, over loopback
//!
//! Each test starts its own service under a unique abstract name (`QUICTUN_SOCKD`), so tests run
//! in parallel without meeting each other. Skips with a message without gcc. The root-only test
//! shows that two network namespaces each get their own service (abstract Unix names are
//! scoped to the namespace). Does not link quic-sock: its interposed `socket`/`close` would
//! replace this binary's own.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn quicsock_dir() -> PathBuf {
    workspace().join("quic-sock")
}

fn gcc_ok() -> bool {
    let ok = Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: gcc not found");
    }
    ok
}

/// Directory holding libquic_sock.so, built here (a no-op when fresh)
fn lib_dir() -> Option<PathBuf> {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        // Cargo's CARGO_PKG_* & co. would make build scripts with rerun-if-env-changed rerun.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if (k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR")
                || k == "OUT_DIR"
            {
                cmd.env_remove(k);
            }
        }
        let st = cmd
            .args(["build", "-p", "quic-sock", "--lib", "--manifest-path"])
            .arg(quicsock_dir().join("Cargo.toml"))
            .status();
        if !st.is_ok_and(|s| s.success()) {
            eprintln!("building the quic-sock cdylib failed");
        }
    });
    // The quictun binary sits in target/<profile>/; `cargo build` (dev profile) puts the
    // cdylib in target/debug/.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_quictun"));
    let candidates = [
        bin.parent().map(Path::to_path_buf),
        bin.parent().and_then(Path::parent).map(|t| t.join("debug")),
    ];
    for d in candidates.into_iter().flatten() {
        if d.join("libquic_sock.so").exists() {
            return Some(d);
        }
    }
    eprintln!("SKIP: no libquic_sock.so next to {}", bin.display());
    None
}

fn out_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("sockd-c-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn compile(src: &Path, extra: &[&str], out: &Path) {
    let o = Command::new("gcc")
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(quicsock_dir().join("include"))
        .arg(src)
        .args(extra)
        .arg("-o")
        .arg(out)
        .output()
        .expect("run gcc");
    assert!(
        o.status.success(),
        "gcc {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn linked_args(lib: &Path) -> Vec<String> {
    vec![
        format!("-L{}", lib.display()),
        format!("-Wl,-rpath,{}", lib.display()),
        "-lquic_sock".into(),
    ]
}

/// Builds `src` linked against libquic_sock in `lib`, plus `extra` (e.g. "-lgnutls")
fn compile_linked(src: &Path, lib: &Path, extra: &[&str], out: &Path) {
    let mut args = linked_args(lib);
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    compile(src, &args, out);
}

/// A test program of quic-sock/tests/c
fn c_source(name: &str) -> PathBuf {
    quicsock_dir().join("tests/c").join(name)
}

/// The directory of libquic_sock.so when gcc (and, with `gnutls`, GnuTLS's headers) are
/// there too; None after printing why the test skips
fn c_toolchain(gnutls: bool) -> Option<PathBuf> {
    if !gcc_ok() {
        return None;
    }
    if gnutls && !Path::new("/usr/include/gnutls/gnutls.h").exists() {
        eprintln!("SKIP: GnuTLS headers not installed");
        return None;
    }
    lib_dir()
}

/// A running `quictun sockd`, killed (by its pid) on drop
struct Sockd {
    child: Child,
    name: String,
    /// Everything it logged so far
    log: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Sockd {
    fn start(netns: Option<&str>) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "quictun-sockd-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Self::start_with(netns, &name, &[])
    }

    /// A service that also logs rustls' resumption decisions and NEW_TOKEN address validation
    fn start_logging_resumption() -> Self {
        let name = format!("quictun-sockd-it-resume-{}", std::process::id());
        Self::start_full(
            None,
            &name,
            &[],
            "info,rustls::client::tls13=debug,quic_stack::endpoint=debug",
        )
    }

    fn start_named(netns: Option<&str>, name: &str) -> Self {
        Self::start_with(netns, name, &[])
    }

    fn start_with(netns: Option<&str>, name: &str, extra: &[&str]) -> Self {
        Self::start_full(netns, name, extra, "info")
    }

    fn start_full(netns: Option<&str>, name: &str, extra: &[&str], rust_log: &str) -> Self {
        let name = name.to_string();
        let bin = env!("CARGO_BIN_EXE_quictun");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin, "sockd"]);
                c
            }
            None => {
                let mut c = Command::new(bin);
                c.arg("sockd");
                c
            }
        };
        let mut child = cmd
            .args(extra)
            .env("QUICTUN_SOCKD", format!("@{name}"))
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start quictun sockd");
        // Ready once it logs that it listens (or it died: report why).
        let mut err = child.stderr.take().expect("stderr");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut log = Vec::new();
        let mut b = [0u8; 256];
        while !String::from_utf8_lossy(&log).contains("listening") {
            assert!(Instant::now() < deadline, "sockd did not start");
            match err.read(&mut b) {
                Ok(0) | Err(_) => panic!("sockd exited: {}", String::from_utf8_lossy(&log)),
                Ok(n) => log.extend_from_slice(&b[..n]),
            }
        }
        // Keep draining stderr so the service never blocks on a full pipe.
        let kept = std::sync::Arc::new(std::sync::Mutex::new(log));
        let sink = kept.clone();
        std::thread::spawn(move || {
            let mut b = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut b) {
                let mut l = sink.lock().unwrap_or_else(|e| e.into_inner());
                // Bounded: the head of the log is what the tests look at.
                if l.len() < (1 << 20) {
                    l.extend_from_slice(&b[..n]);
                }
            }
        });
        Self {
            child,
            name,
            log: kept,
        }
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    fn env(&self) -> String {
        format!("@{}", self.name)
    }
}

impl Drop for Sockd {
    fn drop(&mut self) {
        // SIGTERM first: the service exits cleanly; then make sure.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
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

/// Server key and certificate PEM files for quic_server_handshake
fn cert_files() -> (PathBuf, PathBuf) {
    let d = out_dir();
    let (key, cert) = (d.join("key.pem"), d.join("cert.pem"));
    if !key.exists() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("self-signed cert");
        std::fs::write(&cert, ck.cert.pem()).expect("write cert");
        std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
    }
    (key, cert)
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn run_ok(cmd: &mut Command) {
    let o = cmd.output().expect("run C program");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && stdout.contains("OK"),
        "C program failed ({}):\nstdout: {stdout}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

fn echo_cmd(exe: &Path, svc: &Sockd) -> Command {
    let (key, cert) = cert_files();
    let mut c = Command::new(exe);
    c.arg(key)
        .arg(cert)
        .arg(free_udp_port().to_string())
        .env("QUICTUN_SOCKD", svc.env());
    c
}

#[test]
fn echo_linked_against_the_library() {
    let Some(lib) = c_toolchain(false) else {
        return;
    };
    let exe = out_dir().join("sockd_echo_linked");
    compile_linked(&c_source("sockd_echo.c"), &lib, &[], &exe);
    let svc = Sockd::start(None);
    run_ok(&mut echo_cmd(&exe, &svc));
}

/// External TLS from C: GnuTLS's QUIC hooks drive the client socket as libquic drives the
/// kernel; skips without the GnuTLS development files
#[test]
fn external_tls_with_gnutls() {
    let Some(lib) = c_toolchain(true) else { return };
    let exe = out_dir().join("sockd_exttls");
    compile_linked(&c_source("sockd_exttls.c"), &lib, &["-lgnutls"], &exe);
    let svc = Sockd::start(None);
    run_ok(&mut echo_cmd(&exe, &svc));
}

#[test]
fn echo_unmodified_program_under_ld_preload() {
    let Some(lib) = c_toolchain(false) else {
        return;
    };
    let exe = out_dir().join("sockd_echo_preload");
    // Not linked with quic_sock: linked, like a program built for the kernel module, against
    // a "libquic.so" (here a stub whose handshakes fail); the preloaded library interposes
    // socket calls and the libquic helpers alike.
    compile_for_preload(&c_source("sockd_echo.c"), &exe);
    let svc = Sockd::start(None);
    run_ok(echo_cmd(&exe, &svc).env("LD_PRELOAD", lib.join("libquic_sock.so")));
}

/// Build `src` like a program made for the kernel module: linked against a "libquic.so" stub
/// (handshakes that fail); under LD_PRELOAD the library interposes socket calls and helpers
fn compile_for_preload(src: &Path, exe: &Path) {
    let stub_src = out_dir().join("stub_libquic.c");
    std::fs::write(
        &stub_src,
        "#include <errno.h>\n\
         int quic_client_handshake(int f,const char*k,const char*h,const char*a)\
         {(void)f;(void)k;(void)h;(void)a;errno=ENOSYS;return -1;}\n\
         int quic_server_handshake(int f,const char*k,const char*c,const char*a)\
         {(void)f;(void)k;(void)c;(void)a;errno=ENOSYS;return -1;}\n",
    )
    .expect("write stub");
    compile(
        &stub_src,
        &["-shared", "-fPIC"],
        &out_dir().join("libquic.so"),
    );
    let stub_dir = out_dir();
    let l = format!("-L{}", stub_dir.display());
    let r = format!("-Wl,-rpath,{}", stub_dir.display());
    compile(src, &["-DKERNEL_API_ONLY", &l, &r, "-lquic"], exe);
}

/// Key update, CID get/set/retirement, migration, NEW_TOKEN, MAX_STREAMS and STREAM_MAX_DATA
/// with their events, close code/phrase via getsockopt, errno cases: linked
#[test]
fn features_linked_against_the_library() {
    let Some(lib) = c_toolchain(false) else {
        return;
    };
    let exe = out_dir().join("sockd_features_linked");
    compile_linked(&c_source("sockd_features.c"), &lib, &[], &exe);
    let svc = Sockd::start_logging_resumption();
    run_ok(&mut echo_cmd(&exe, &svc));
    // The second connection, set up with the first one's session ticket, resumed: the kernel
    // API has no way to tell, rustls' log does.
    let log = svc.log_text();
    assert_eq!(
        log.matches("Resuming using PSK").count(),
        1,
        "exactly the second handshake resumes:\n{log}"
    );
    // ... and, with the first connection's NEW_TOKEN token set, skips the listener's Retry.
    assert_eq!(
        log.matches("address validated by a NEW_TOKEN token")
            .count(),
        1,
        "exactly the second connection brings a token:\n{log}"
    );
}

/// The same program, built for the kernel module, under LD_PRELOAD
#[test]
fn features_unmodified_program_under_ld_preload() {
    let Some(lib) = c_toolchain(false) else {
        return;
    };
    let exe = out_dir().join("sockd_features_preload");
    compile_for_preload(&c_source("sockd_features.c"), &exe);
    let svc = Sockd::start(None);
    run_ok(echo_cmd(&exe, &svc).env("LD_PRELOAD", lib.join("libquic_sock.so")));
}

#[test]
fn two_services_do_not_share_clients() {
    let Some(lib) = c_toolchain(false) else {
        return;
    };
    let exe = out_dir().join("sockd_echo_two");
    compile_linked(&c_source("sockd_echo.c"), &lib, &[], &exe);
    let a = Sockd::start(None);
    let b = Sockd::start(None);
    // Both at once; a client killed mid-way on one service does not disturb the other.
    let mut victim = echo_cmd(&exe, &a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(50));
    let _ = victim.kill();
    let _ = victim.wait();
    run_ok(&mut echo_cmd(&exe, &b));
    run_ok(&mut echo_cmd(&exe, &a));
}

/// The per-uid socket limit: EMFILE beyond it, and a closed socket frees its slot
#[test]
fn socket_limit_per_uid() {
    let Some(lib) = c_toolchain(false) else {
        return;
    };
    let src = out_dir().join("limit.c");
    std::fs::write(
        &src,
        r#"#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <netinet/quic.h>
int main(void)
{
	int a = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	int b = socket(AF_INET6, SOCK_STREAM, IPPROTO_QUIC);
	int c = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC), i;

	if (a < 0 || b < 0)
		return 1;
	if (!(c == -1 && errno == EMFILE))
		return 2;
	close(a); /* the service notices the EOF and frees the slot */
	for (i = 0; i < 100 && c < 0; i++) {
		usleep(20000);
		c = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	}
	if (c < 0)
		return 3;
	puts("OK");
	return 0;
}
"#,
    )
    .expect("write limit.c");
    let exe = out_dir().join("limit");
    compile_linked(&src, &lib, &[], &exe);
    let name = format!("quictun-sockd-it-limit-{}", std::process::id());
    let svc = Sockd::start_with(None, &name, &["--max-sockets", "2"]);
    run_ok(Command::new(&exe).env("QUICTUN_SOCKD", svc.env()));
}

/// The README's "use QUIC sockets from your program" example compiles as printed
#[test]
fn readme_example_compiles() {
    let Some(lib) = c_toolchain(false) else {
        return;
    };
    let readme = std::fs::read_to_string(quicsock_dir().join("README.md")).expect("README");
    let start = readme
        .find("```c\n")
        .expect("README has a ```c example block")
        + 5;
    let len = readme[start..].find("```").expect("closed block");
    let src = out_dir().join("readme_example.c");
    std::fs::write(&src, &readme[start..start + len]).expect("write example");
    compile_linked(&src, &lib, &[], &out_dir().join("readme_example"));
}

/// Abstract Unix names are per network namespace: each namespace has its own service, and a
/// program in a namespace without one sees "no QUIC support" (EPROTONOSUPPORT)
#[test]
fn each_network_namespace_has_its_own_service() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: needs root for network namespaces");
        return;
    }
    if !gcc_ok()
        || !Command::new("ip")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        eprintln!("SKIP: gcc or ip missing");
        return;
    }
    let Some(lib) = lib_dir() else { return };
    let exe = out_dir().join("sockd_echo_ns");
    compile_linked(&c_source("sockd_echo.c"), &lib, &[], &exe);
    let nosvc_src = out_dir().join("nosvc.c");
    std::fs::write(
        &nosvc_src,
        "#include <errno.h>\n#include <stdio.h>\n#include <netinet/quic.h>\n\
         int main(void){int fd=socket(AF_INET,SOCK_DGRAM,IPPROTO_QUIC);\
         if(fd==-1&&errno==EPROTONOSUPPORT){printf(\"OK\\n\");return 0;}return 1;}\n",
    )
    .expect("write nosvc.c");
    let nosvc = out_dir().join("nosvc_ns");
    compile_linked(&nosvc_src, &lib, &[], &nosvc);

    let pid = std::process::id();
    let ns = [format!("qtsockd-a-{pid}"), format!("qtsockd-b-{pid}")];
    let _guard = NsGuard(ns.clone());
    for n in &ns {
        let ok = Command::new("ip")
            .args(["netns", "add", n])
            .status()
            .is_ok_and(|s| s.success())
            && Command::new("ip")
                .args(["-n", n, "link", "set", "lo", "up"])
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIP: cannot create network namespaces here");
            return;
        }
    }
    let in_ns = |n: &str, exe: &Path| {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", n]).arg(exe);
        c
    };
    // Only A has a service: B's program finds none under the same name.
    let a = Sockd::start(Some(&ns[0]));
    run_ok(in_ns(&ns[1], &nosvc).env("QUICTUN_SOCKD", a.env()));
    let (key, cert) = cert_files();
    run_ok(
        in_ns(&ns[0], &exe)
            .arg(&key)
            .arg(&cert)
            .arg("4433")
            .env("QUICTUN_SOCKD", a.env()),
    );
    // B's own service under the SAME name: no clash, and each echo runs in its namespace
    // (same port 4433 in both: the UDP ports are per namespace too).
    let b = Sockd::start_named(Some(&ns[1]), &a.name);
    run_ok(
        in_ns(&ns[1], &exe)
            .arg(&key)
            .arg(&cert)
            .arg("4433")
            .env("QUICTUN_SOCKD", b.env()),
    );
}

/// Deletes the namespaces, whatever happened
struct NsGuard([String; 2]);

impl Drop for NsGuard {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// SIGTERM ends the service with status 0, and the name is free again at once
#[test]
fn sigterm_exits_cleanly() {
    let mut svc = Sockd::start(None);
    let pid = nix::unistd::Pid::from_raw(svc.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = svc.child.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "sockd ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "sockd exit status {status}");
    // Abstract names vanish with their socket: a new service can take the same name.
    let again = Sockd::start_named(None, &svc.name);
    drop(again);
}

/// Runs tests/c/sockd_psk.c; exit 77 = GnuTLS not installed (skip)
fn run_psk(cmd: &mut Command) {
    let dir = out_dir().join(format!("psk-{}", free_udp_port()));
    std::fs::create_dir_all(&dir).expect("psk dir");
    let o = cmd
        .arg(&dir)
        .arg(free_udp_port().to_string())
        .output()
        .expect("run sockd_psk");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    if o.status.code() == Some(77) {
        eprintln!("{stdout}");
        return;
    }
    assert!(
        o.status.success() && stdout.contains("OK"),
        "sockd_psk failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        o.status
    );
    // The timings of the failing round, for the log
    eprintln!("{stderr}");
}

/// PSK handshakes with GnuTLS inside the library (client and accepted server socket), an
/// echoed stream and datagram, then a wrong key failing cleanly on both sides: linked
#[test]
fn psk_linked_against_the_library() {
    let Some(lib) = c_toolchain(false) else {
        return;
    };
    let exe = out_dir().join("sockd_psk_linked");
    compile_linked(&c_source("sockd_psk.c"), &lib, &["-ldl"], &exe);
    let svc = Sockd::start(None);
    run_psk(Command::new(&exe).env("QUICTUN_SOCKD", svc.env()));
}

/// The same program, built for the kernel module and libquic, under LD_PRELOAD
#[test]
fn psk_unmodified_program_under_ld_preload() {
    let Some(lib) = c_toolchain(false) else {
        return;
    };
    let exe = out_dir().join("sockd_psk_preload");
    compile_for_preload(&c_source("sockd_psk.c"), &exe);
    let svc = Sockd::start(None);
    run_psk(
        Command::new(&exe)
            .env("QUICTUN_SOCKD", svc.env())
            .env("LD_PRELOAD", lib.join("libquic_sock.so")),
    );
}

/// libquic's GnuTLS API: an application-configured PSK client session through the blocking
/// `quic_handshake`, a server session through the step API, ALPN helpers, then an echo;
/// skips without the GnuTLS development files
#[test]
fn gnutls_api_quic_handshake_and_steps() {
    let Some(lib) = c_toolchain(true) else { return };
    let exe = out_dir().join("sockd_gnutls_api");
    compile_linked(&c_source("sockd_gnutls_api.c"), &lib, &["-lgnutls"], &exe);
    // The other include order (GnuTLS's header first) compiles as well, strictly.
    let src = out_dir().join("gnutls_first.c");
    std::fs::write(
        &src,
        "#include <gnutls/gnutls.h>\n#include <netinet/quic.h>\n\
         int main(void){gnutls_session_t s=0;return quic_handshake(s)==0;}\n",
    )
    .expect("write gnutls_first.c");
    compile_linked(
        &src,
        &lib,
        &["-lgnutls", "-pedantic-errors"],
        &out_dir().join("gnutls_first"),
    );
    let svc = Sockd::start(None);
    run_ok(
        Command::new(&exe)
            .arg(free_udp_port().to_string())
            .env("QUICTUN_SOCKD", svc.env()),
    );
}

/// The same GnuTLS-API program built against a "libquic.so" (a stub whose every function
/// fails) and run under LD_PRELOAD: the preloaded library's quic_handshake, step API and
/// session helpers are the ones that run
#[test]
fn gnutls_api_under_ld_preload() {
    let Some(lib) = c_toolchain(true) else { return };
    let stub_dir = out_dir().join("gnutls-stub");
    std::fs::create_dir_all(&stub_dir).expect("stub dir");
    let stub_src = stub_dir.join("stub.c");
    std::fs::write(
        &stub_src,
        "#include <errno.h>\n#include <stddef.h>\n\
         #define F(n, ...) int n(__VA_ARGS__) { return -ENOSYS; }\n\
         F(quic_handshake, void *s)\n\
         F(quic_handshake_init, void *s, void **p)\n\
         F(quic_handshake_step, void *s, void **p)\n\
         void quic_handshake_deinit(void *s) { (void)s; }\n\
         F(quic_session_get_alpn, void *s, void *d, size_t *n)\n\
         F(quic_session_set_alpn, void *s, const void *d, size_t n)\n\
         F(quic_session_get_data, void *s, void *d, size_t *n)\n\
         F(quic_session_set_data, void *s, const void *d, size_t n)\n",
    )
    .expect("write stub");
    compile(
        &stub_src,
        &["-shared", "-fPIC", "-Wno-unused-parameter"],
        &stub_dir.join("libquic.so"),
    );
    let exe = out_dir().join("sockd_gnutls_api_preload");
    let l = format!("-L{}", stub_dir.display());
    let r = format!("-Wl,-rpath,{}", stub_dir.display());
    compile(
        &c_source("sockd_gnutls_api.c"),
        &[&l, &r, "-lquic", "-lgnutls"],
        &exe,
    );
    let svc = Sockd::start(None);
    run_ok(
        Command::new(&exe)
            .arg(free_udp_port().to_string())
            .env("QUICTUN_SOCKD", svc.env())
            .env("LD_PRELOAD", lib.join("libquic_sock.so")),
    );
}
