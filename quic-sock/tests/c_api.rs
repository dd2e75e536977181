//! End to end: C programs compiled with gcc, using only the kernel QUIC API (and libquic's
//! helpers), run through libquic_sock.so against a fake socket service
//!
//! The fake answers the real protocol (`quic_stack::sockapi::msg`) with the real option and
//! receive-queue rules (`SockOptions`, `RecvQueue`); its "connection" is a loopback that
//! echoes stream data and datagrams and reports STREAM_UPDATE on FIN. The test deliberately
//! does not link the quic_sock rlib: its exported `socket`/`close`/... would interpose this
//! test binary's own calls. Skips (with a message) without gcc or the built cdylib.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;

use quic_stack::sockapi::consts::*;
use quic_stack::sockapi::events::{Event, RecvQueue};
use quic_stack::sockapi::msg::{self, RawAddr, Request, Response};
use quic_stack::sockapi::options::{
    reply_for, ConnQuery, GetOutcome, SetOutcome, SockOptions, SockState,
};
use quic_stack::sockapi::send::{classify_send, SendTarget, StreamChoice};
use quic_stack::sockapi::types::{ConnectionIdInfo, HandshakeInfo, StreamInfo, StreamUpdate};
use quic_stack::sockapi::Errno;

/// A listening abstract SEQPACKET socket served by threads, one per client connection
fn start_fake_service() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "quictun-sockd-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    // SAFETY: plain socket calls on a fresh fd with a valid sockaddr_un.
    let lfd = unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let mut sun: libc::sockaddr_un = std::mem::zeroed();
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (i, b) in name.bytes().enumerate() {
            sun.sun_path[i + 1] = b as libc::c_char;
        }
        let len = size_of::<libc::sa_family_t>() + 1 + name.len();
        assert_eq!(
            libc::bind(fd, std::ptr::from_ref(&sun).cast(), len as u32),
            0
        );
        assert_eq!(libc::listen(fd, 16), 0);
        fd
    };
    thread::spawn(move || loop {
        // SAFETY: accept on our listening fd.
        let c = unsafe {
            libc::accept4(
                lfd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if c < 0 {
            return;
        }
        thread::spawn(move || {
            FakeSocket::new(c).serve();
            // SAFETY: the connection fd is ours.
            unsafe { libc::close(c) };
        });
    });
    name
}

/// Listening fake sockets by address: the listener's service fd (for its doorbell) and the
/// queue of connecting clients' addresses
type Listeners = Mutex<HashMap<SocketAddr, (i32, VecDeque<SocketAddr>)>>;

fn listeners() -> &'static Listeners {
    static L: OnceLock<Listeners> = OnceLock::new();
    L.get_or_init(Listeners::default)
}

fn ring(fd: i32, bits: u32) {
    let b = Response::Notify(bits).encode(0);
    // SAFETY: b is valid for its length.
    unsafe { libc::send(fd, b.as_ptr().cast(), b.len(), libc::MSG_NOSIGNAL) };
}

struct FakeSocket {
    fd: i32,
    opts: SockOptions,
    queue: RecvQueue,
    local: SocketAddr,
    peer: Option<SocketAddr>,
    next_bidi: i64,
    next_uni: i64,
    active: Option<i64>,
    /// Datagrams starting with "delay:" are echoed 200 ms later, to exercise blocking
    /// receives woken by the Notify doorbell
    delayed: Vec<(std::time::Instant, Vec<u8>)>,
    /// Stream sends starting with "block:" are refused as flow-control blocked until this
    /// deadline passes; then a POLLOUT doorbell rings and they are accepted
    unblock_at: Option<std::time::Instant>,
    unblocked: bool,
    /// Header flags of the request being handled
    req_flags: u16,
}

impl FakeSocket {
    fn new(fd: i32) -> Self {
        Self {
            fd,
            opts: SockOptions::new(),
            queue: RecvQueue::new(),
            local: "0.0.0.0:0".parse().unwrap(),
            peer: None,
            next_bidi: 0,
            next_uni: 2,
            active: None,
            delayed: Vec::new(),
            unblock_at: None,
            unblocked: false,
            req_flags: 0,
        }
    }

    fn readable(&self) -> bool {
        if !self.queue.is_empty() {
            return true;
        }
        let l = listeners().lock().unwrap();
        self.opts.state() == SockState::Listening
            && l.get(&self.local).is_some_and(|(_, q)| !q.is_empty())
    }

    /// The Accepted answer, with the new socket's fd as SCM_RIGHTS
    fn send_accepted(&self, seq: u32, addr: SocketAddr, passed: i32) {
        let mut b = Response::Accepted(RawAddr::from_socket_addr(&addr)).encode(seq);
        if self.readable() {
            msg::Header::set_flags(&mut b, msg::FLAG_NOTIFY_FOLLOWS);
        }
        // SAFETY: iov/cmsg buffers are valid; CMSG_* stay within cbuf.
        unsafe {
            let mut iov = libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            };
            let mut cbuf = [0u64; 4];
            let mut m: libc::msghdr = std::mem::zeroed();
            m.msg_iov = &mut iov;
            m.msg_iovlen = 1;
            m.msg_control = cbuf.as_mut_ptr().cast();
            m.msg_controllen = libc::CMSG_SPACE(4) as usize;
            let c = libc::CMSG_FIRSTHDR(&m);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
            std::ptr::copy_nonoverlapping((&raw const passed).cast::<u8>(), libc::CMSG_DATA(c), 4);
            libc::sendmsg(self.fd, &m, libc::MSG_NOSIGNAL);
        }
    }

    fn accept(&mut self, seq: u32) -> bool {
        let next = listeners()
            .lock()
            .unwrap()
            .get_mut(&self.local)
            .and_then(|(_, q)| q.pop_front());
        let Some(peer) = next else { return false };
        let mut pair = [0i32; 2];
        // SAFETY: pair is valid for two fds.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0);
        let mut child = Self::new(pair[0]);
        child.opts = self.opts.accept_child();
        child.local = self.local;
        child.peer = Some(peer);
        thread::spawn(move || {
            child.serve();
            // SAFETY: our end of the pair.
            unsafe { libc::close(child.fd) };
        });
        self.send_accepted(seq, peer, pair[1]);
        // SAFETY: the peer end now lives in the application.
        unsafe { libc::close(pair[1]) };
        true
    }

    fn send(&self, seq: u32, r: &Response<'_>) {
        let mut b = r.encode(seq);
        if seq != 0 && self.readable() {
            msg::Header::set_flags(&mut b, msg::FLAG_NOTIFY_FOLLOWS);
        }
        // SAFETY: b is valid for its length.
        unsafe { libc::send(self.fd, b.as_ptr().cast(), b.len(), libc::MSG_NOSIGNAL) };
    }

    fn serve(&mut self) {
        let mut buf = vec![0u8; msg::MAX_MESSAGE];
        loop {
            if let Some(due) = self.unblock_at {
                let wait = due.saturating_duration_since(std::time::Instant::now());
                let mut p = libc::pollfd {
                    fd: self.fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut p, 1, wait.as_millis() as i32) } == 0 {
                    self.unblock_at = None;
                    self.unblocked = true;
                    self.send(0, &Response::Notify(msg::ready::OUT));
                    continue;
                }
            }
            if let Some(&(due, _)) = self.delayed.first() {
                let wait = due.saturating_duration_since(std::time::Instant::now());
                let mut p = libc::pollfd {
                    fd: self.fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut p, 1, wait.as_millis() as i32) } == 0 {
                    let (_, d) = self.delayed.remove(0);
                    let was_empty = self.queue.is_empty();
                    self.queue.push_datagram(d);
                    if was_empty {
                        self.send(0, &Response::Notify(msg::ready::IN));
                    }
                    continue;
                }
            }
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                return; // EOF: the application closed the socket
            }
            self.req_flags = msg::Header::split(&buf[..n as usize]).map_or(0, |(h, _, _)| h.flags);
            let Ok((seq, req)) = Request::decode(&buf[..n as usize]) else {
                self.send(0, &Response::Err(libc::EPROTO));
                return;
            };
            let close = matches!(req, Request::Close);
            if matches!(req, Request::Accept { .. }) && self.accept(seq) {
                if self.readable() {
                    self.send(0, &Response::Notify(msg::ready::IN));
                }
                continue;
            }
            let mut out = Vec::new();
            let resp = self.handle(&req, &mut out);
            match resp {
                Ok(r) => self.send(seq, &r),
                Err(e) => self.send(seq, &Response::Err(e.0)),
            }
            if self.readable() {
                self.send(0, &Response::Notify(msg::ready::IN));
            }
            if close {
                return;
            }
        }
    }

    fn handle<'a>(
        &mut self,
        req: &Request<'_>,
        out: &'a mut Vec<u8>,
    ) -> Result<Response<'a>, Errno> {
        let ok = Ok(Response::Ok(0));
        match req {
            Request::Socket { protocol, .. } => {
                if *protocol != IPPROTO_QUIC {
                    return Err(Errno::EPROTONOSUPPORT);
                }
                ok
            }
            Request::Bind(a) => {
                self.local = a.to_socket_addr()?;
                ok
            }
            Request::Connect(a) => {
                self.peer = Some(a.to_socket_addr()?);
                if self.local.port() == 0 {
                    self.local = "127.0.0.1:40000".parse().unwrap();
                }
                self.opts.on_connect();
                let peer = self.peer;
                if let Some((lfd, q)) = peer.and_then(|p| {
                    listeners().lock().unwrap().get_mut(&p).map(|(f, q)| {
                        q.push_back(self.local);
                        (*f, q.len())
                    })
                }) {
                    if q == 1 {
                        ring(lfd, msg::ready::IN);
                    }
                }
                ok
            }
            Request::Listen { backlog } => {
                self.opts.on_listen(*backlog);
                listeners()
                    .lock()
                    .unwrap()
                    .insert(self.local, (self.fd, VecDeque::new()));
                ok
            }
            // Nothing pending (a pending connection was answered in `serve`).
            Request::Accept { .. } if self.opts.state() == SockState::Listening => {
                Err(Errno::EAGAIN)
            }
            Request::Accept { .. } => Err(Errno::EINVAL),
            Request::Handshake(_) => {
                if self.opts.state() != SockState::Establishing {
                    return Err(Errno::EINVAL);
                }
                self.opts.on_established();
                ok
            }
            Request::SendMsg {
                flags,
                stream_info,
                handshake_level,
                payload,
            } => self.sendmsg(*flags, *stream_info, *handshake_level, payload),
            Request::RecvMsg { flags, max_len } => {
                out.resize(*max_len as usize, 0);
                let peek = flags & quic_stack::sockapi::consts::msg::PEEK != 0;
                match self.queue.recv(out, peek) {
                    None if self.opts.state() == SockState::Closed => Err(Errno::ENOTCONN),
                    None => Err(Errno::EAGAIN),
                    Some(r) => Ok(Response::Recv {
                        msg_flags: r.msg_flags,
                        stream_info: r.stream_info(),
                        handshake_level: match r.kind {
                            quic_stack::sockapi::events::RecvKind::Handshake { level } => {
                                Some(level)
                            }
                            _ => None,
                        },
                        payload: &out[..r.len],
                    }),
                }
            }
            Request::SetSockOpt {
                level,
                optname,
                optval,
            } => {
                if *level != SOL_QUIC {
                    return ok;
                }
                match self.opts.set(*optname, optval)? {
                    SetOutcome::Stored | SetOutcome::Do(_) => ok,
                }
            }
            Request::GetSockOpt {
                level,
                optname,
                optlen,
                input,
            } => {
                if *level != SOL_QUIC {
                    return Err(Errno::ENOPROTOOPT);
                }
                let v = match self.opts.get(*optname, input, *optlen as usize)? {
                    GetOutcome::Value(v) => v,
                    GetOutcome::Ask(q) => {
                        let answer = self.answer(&q);
                        reply_for(&q, &answer, *optlen as usize)?
                    }
                };
                *out = v;
                Ok(Response::OptVal(out))
            }
            Request::GetSockName => Ok(Response::Addr(RawAddr::from_socket_addr(&self.local))),
            Request::GetPeerName => match self.peer {
                Some(p) => Ok(Response::Addr(RawAddr::from_socket_addr(&p))),
                None => Err(Errno::ENOTCONN),
            },
            Request::Shutdown { .. } => {
                self.opts.on_closed();
                ok
            }
            Request::Close => ok,
        }
    }

    fn answer(&mut self, q: &ConnQuery) -> Vec<u8> {
        match q {
            ConnQuery::StreamOpen(info) => {
                let id = match info.stream_id {
                    -1 if info.stream_flags & MSG_QUIC_STREAM_UNI != 0 => {
                        self.next_uni += 4;
                        self.next_uni - 4
                    }
                    -1 => {
                        self.next_bidi += 4;
                        self.next_bidi - 4
                    }
                    id => id,
                };
                StreamInfo {
                    stream_id: id,
                    ..*info
                }
                .encode()
                .to_vec()
            }
            ConnQuery::ConnectionId { dest } => ConnectionIdInfo {
                dest: u8::from(*dest),
                active: 1,
                prior_to: 0,
            }
            .encode()
            .to_vec(),
            ConnQuery::SessionTicketKey => vec![0; 64],
            ConnQuery::TransportParamExt => vec![0x0f, 0x00],
        }
    }

    fn sendmsg<'a>(
        &mut self,
        flags: u32,
        si: Option<StreamInfo>,
        hs: Option<u8>,
        payload: &[u8],
    ) -> Result<Response<'a>, Errno> {
        if matches!(self.opts.state(), SockState::Closed | SockState::Listening) {
            return Err(Errno::EPIPE);
        }
        let target = classify_send(
            flags,
            si,
            hs.map(|l| HandshakeInfo { crypto_level: l }),
            payload.len(),
        )?;
        match target {
            // No TLS keys in the fake.
            SendTarget::Handshake { .. } => return Err(Errno::EINVAL),
            SendTarget::Datagram => {
                // The echo peer advertises what we advertise.
                if self.opts.local_transport_param().max_datagram_frame_size == 0 {
                    return Err(Errno::EINVAL);
                }
                if payload.starts_with(b"delay:") {
                    let due = std::time::Instant::now() + std::time::Duration::from_millis(200);
                    self.delayed.push((due, payload.to_vec()));
                } else {
                    self.queue.push_datagram(payload.to_vec());
                }
            }
            SendTarget::Stream {
                choice,
                stream_flags,
                ..
            } => {
                if payload.starts_with(b"block:") {
                    if !self.unblocked {
                        // Ring POLLOUT later only for a writer that waits for it.
                        if self.req_flags & msg::FLAG_WILL_WAIT != 0 {
                            self.unblock_at.get_or_insert_with(|| {
                                std::time::Instant::now() + std::time::Duration::from_millis(100)
                            });
                        }
                        return Err(target.flow_blocked_errno());
                    }
                    self.unblocked = false;
                }
                let id = match (choice, self.active) {
                    (StreamChoice::Id(id), _) => id as i64,
                    (_, Some(a)) if stream_flags & MSG_QUIC_STREAM_NEW == 0 => a,
                    (StreamChoice::ActiveOrNextUni, _) => {
                        self.next_uni += 4;
                        self.next_uni - 4
                    }
                    _ => {
                        self.next_bidi += 4;
                        self.next_bidi - 4
                    }
                };
                let fin = stream_flags & MSG_QUIC_STREAM_FIN != 0;
                self.active = (!fin).then_some(id);
                self.queue.push_stream(id, payload.to_vec(), fin);
                if fin {
                    let ev = Event::StreamUpdate(StreamUpdate {
                        id,
                        state: stream_state::SEND_RECVD,
                        errcode: 0,
                        finalsz: payload.len() as u64,
                    });
                    self.queue.push_event(self.opts.events(), &ev);
                }
            }
        }
        Ok(Response::Ok(payload.len() as i64))
    }
}

fn gcc() -> Option<PathBuf> {
    let ok = Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: gcc not found");
        return None;
    }
    Some(PathBuf::from("gcc"))
}

/// target/<profile>/ holding libquic_sock.so (the test binary lives in its deps/)
///
/// `cargo test` builds only the rlib for integration tests, so build the cdylib here (a
/// no-op when fresh; it also keeps the .so from going stale against the sources).
fn lib_dir() -> Option<PathBuf> {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        // Cargo gives this process CARGO_PKG_* & co.; build scripts that declare
        // rerun-if-env-changed on them (ring) would be rebuilt back and forth.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if (k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR")
                || k == "OUT_DIR"
            {
                cmd.env_remove(k);
            }
        }
        let st = cmd
            .args([
                "build",
                "-p",
                "quic-sock",
                "--lib",
                "--profile",
                "test",
                "--manifest-path",
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .status();
        if !st.is_ok_and(|s| s.success()) {
            eprintln!("building the quic-sock cdylib failed");
        }
    });
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.to_path_buf();
    if dir.join("libquic_sock.so").exists() {
        Some(dir)
    } else {
        eprintln!("SKIP: {} has no libquic_sock.so", dir.display());
        None
    }
}

fn src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(name)
}

fn include() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

fn out_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("quicsock-c-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn compile(args: &[&str], out: &Path) -> bool {
    let Some(gcc) = gcc() else { return false };
    let o = Command::new(gcc)
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(include())
        .args(args)
        .arg("-o")
        .arg(out)
        .output()
        .expect("run gcc");
    assert!(
        o.status.success(),
        "gcc failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    true
}

fn run(cmd: &mut Command) {
    let o = cmd.output().expect("run C program");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && stdout.contains("OK"),
        "C program failed ({}):\nstdout: {stdout}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn header_layout_static_asserts() {
    let exe = out_dir().join("layout");
    let layout = src("layout.c");
    if compile(&[layout.to_str().unwrap()], &exe) {
        run(&mut Command::new(&exe));
    }
}

#[test]
fn c_program_linked_against_the_library() {
    let Some(lib) = lib_dir() else { return };
    let exe = out_dir().join("echo_linked");
    let echo = src("echo.c");
    let ldir = format!("-L{}", lib.display());
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    if !compile(
        &[echo.to_str().unwrap(), &ldir, &rpath, "-lquic_sock"],
        &exe,
    ) {
        return;
    }
    let name = start_fake_service();
    run(Command::new(&exe).env(msg::SERVICE_ENV, format!("@{name}")));
}

#[test]
fn unmodified_c_program_under_ld_preload() {
    let Some(lib) = lib_dir() else { return };
    let exe = out_dir().join("echo_preload");
    let echo = src("echo.c");
    if !compile(&["-DKERNEL_API_ONLY", echo.to_str().unwrap()], &exe) {
        return;
    }
    let name = start_fake_service();
    run(Command::new(&exe)
        .env(msg::SERVICE_ENV, &name)
        .env("LD_PRELOAD", lib.join("libquic_sock.so")));
}

#[test]
fn listen_accept_passes_a_real_fd() {
    let Some(lib) = lib_dir() else { return };
    let exe = out_dir().join("accept_preload");
    let c = src("accept.c");
    if !compile(&[c.to_str().unwrap()], &exe) {
        return;
    }
    let name = start_fake_service();
    run(Command::new(&exe)
        .env(msg::SERVICE_ENV, &name)
        .env("LD_PRELOAD", lib.join("libquic_sock.so")));
}

#[test]
fn no_service_looks_like_no_kernel_module() {
    let Some(lib) = lib_dir() else { return };
    let exe = out_dir().join("nosvc");
    let c = out_dir().join("nosvc.c");
    std::fs::write(
        &c,
        "#include <errno.h>\n#include <stdio.h>\n#include <netinet/quic.h>\n\
         int main(void){int fd=socket(AF_INET,SOCK_DGRAM,IPPROTO_QUIC);\
         if(fd==-1&&errno==EPROTONOSUPPORT){printf(\"OK\\n\");return 0;}return 1;}\n",
    )
    .unwrap();
    if compile(&[c.to_str().unwrap()], &exe) {
        run(Command::new(&exe)
            .env(msg::SERVICE_ENV, "quictun-sockd-test-nobody-listens")
            .env("LD_PRELOAD", lib.join("libquic_sock.so")));
    }
}
