//! libquic's handshake engine: a GnuTLS session driven over a QUIC socket's external-TLS calls
//!
//! Exactly what libquic does against the kernel (reference §1.9, §2): our transport parameters
//! come from getsockopt(TRANSPORT_PARAM_EXT) into TLS extension 0x39 and the peer's go to
//! setsockopt(TRANSPORT_PARAM_EXT); GnuTLS's handshake messages leave with sendmsg and a
//! QUIC_HANDSHAKE_INFO cmsg and the peer's arrive with recvmsg; each traffic secret is
//! installed with setsockopt(CRYPTO_SECRET) from GnuTLS's secret callback. The role comes from
//! the socket (getsockopt(TOKEN) fails on servers), as in libquic.
//!
//! The engine is libquic's step machine (`quic_handshake_init/step/deinit`): each step asks the
//! caller for one sendmsg or one non-blocking recvmsg; `quic_handshake` is the blocking loop
//! around it. Messages GnuTLS produces are queued and sent after the GnuTLS call returns, so
//! the secrets of their level are always installed first. The per-session state hangs on the
//! session as extension 0x39's private data (as libquic does), which leaves the session and db
//! pointers to the application.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::ffi::CString;
use std::mem::size_of;
use std::ptr;
use std::time::{Duration, Instant};

use libc::{c_char, c_int, c_uint, c_void, iovec, msghdr, size_t, socklen_t, ssize_t};
use quic_stack::sockapi::consts::{
    QUIC_CRYPTO_APP, QUIC_CRYPTO_EARLY, QUIC_CRYPTO_HANDSHAKE, QUIC_CRYPTO_INITIAL,
    QUIC_CRYPTO_SECRET_BUFFER_SIZE, QUIC_HANDSHAKE_INFO, QUIC_SOCKOPT_CRYPTO_SECRET,
    QUIC_SOCKOPT_SESSION_TICKET, QUIC_SOCKOPT_TOKEN, QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, SOL_QUIC,
};

use crate::gnutls::{self, Datum, Gnutls, Session};
use crate::{api, registry, sys};
use quic_stack::sockapi::psk::{self, PskEntry};

/// TLS extension quic_transport_parameters (RFC 9001 §8.2)
const TP_EXT: c_int = 0x39;
/// libquic's poll slice while waiting for the peer
const POLL_MS: u64 = 1000;
/// Give up on a silent peer (the service's own handshakes use the same bound)
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// One handshake message; the service never sends more in one recvmsg
const RECV_BUF: usize = 65536;
/// libquic's ALPN limits: the comma list under 64 bytes, at most 5 names
const ALPN_MAX_LEN: usize = 64;
const ALPN_MAX_COUNT: usize = 5;
/// TLS_CIPHER_* of `struct quic_crypto_secret` (linux/tls.h)
const TLS_CIPHER_AES_GCM_128: u32 = 51;
const TLS_CIPHER_AES_GCM_256: u32 = 52;
const TLS_CIPHER_AES_CCM_128: u32 = 53;
const TLS_CIPHER_CHACHA20_POLY1305: u32 = 54;
/// sizeof(struct quic_crypto_secret)
const CRYPTO_SECRET_LEN: usize = 8 + QUIC_CRYPTO_SECRET_BUFFER_SIZE;

/// `enum quic_handshake_step_op`
pub const QUIC_HANDSHAKE_STEP_OP_SENDMSG: c_int = 1;
pub const QUIC_HANDSHAKE_STEP_OP_RECVMSG: c_int = 2;

/// libquic's `struct quic_handshake_step`: `op`, then the union of
/// `{ msghdr *msg; int flags; ssize_t retval; }` for sendmsg and recvmsg (same layout)
#[repr(C)]
pub struct QuicHandshakeStep {
    pub op: c_int,
    pub msg: *mut msghdr,
    pub flags: c_int,
    pub retval: ssize_t,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    Send,
    Recv,
}

/// What the caller's buffers of the current step point into; touched by this module only
/// between steps, by the caller's syscall only during one
struct Io {
    step: QuicHandshakeStep,
    msg: msghdr,
    iov: iovec,
    /// CMSG_SPACE(sizeof(struct quic_stream_info)): room for any SOL_QUIC cmsg, so a stray
    /// stream message is recognised rather than truncated
    cmsg: [u64; 4],
    buf: Vec<u8>,
}

/// Per-session engine state. Shared (`&Ctx`) between the engine and GnuTLS's callbacks,
/// which run inside GnuTLS calls the engine makes, hence the cells.
struct Ctx {
    gt: &'static Gnutls,
    session: Session,
    fd: c_int,
    server: bool,
    completed: Cell<bool>,
    /// A callback's failure as a negative errno (preferred over GnuTLS's generic error)
    cb_error: Cell<c_int>,
    out: RefCell<VecDeque<(u8, Vec<u8>)>>,
    next: Cell<Option<Next>>,
    io: UnsafeCell<Io>,
    /// The session's keylog hook before ours (GnuTLS's SSLKEYLOGFILE writer or the
    /// application's), called on and put back by deinit
    prev_keylog: Option<gnutls::KeylogFn>,
    /// Client with early data in flight: GnuTLS hands over the HANDSHAKE receive secret at
    /// the ServerHello but its send secret only after the server's Finished (in TLS over TCP
    /// 0-RTT records go on until EndOfEarlyData). The service makes a level's keys usable
    /// once both directions are in, so the engine takes the send secret from the keylog
    /// hook, where GnuTLS reports it as soon as it is derived.
    hs_tx_secret: RefCell<Vec<u8>>,
    hs_rx_installed: Cell<bool>,
    hs_tx_installed: Cell<bool>,
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let mut s = self.hs_tx_secret.borrow_mut();
        for b in s.iter_mut() {
            // SAFETY: a valid byte of our own buffer; volatile so the wipe stays.
            unsafe { ptr::write_volatile(b, 0) };
        }
    }
}

fn quic_level(tls: c_int) -> Option<u8> {
    match tls {
        gnutls::LEVEL_INITIAL => Some(QUIC_CRYPTO_INITIAL),
        gnutls::LEVEL_EARLY => Some(QUIC_CRYPTO_EARLY),
        gnutls::LEVEL_HANDSHAKE => Some(QUIC_CRYPTO_HANDSHAKE),
        gnutls::LEVEL_APPLICATION => Some(QUIC_CRYPTO_APP),
        _ => None,
    }
}

fn tls_level(quic: u8) -> Option<c_int> {
    match quic {
        QUIC_CRYPTO_INITIAL => Some(gnutls::LEVEL_INITIAL),
        QUIC_CRYPTO_EARLY => Some(gnutls::LEVEL_EARLY),
        QUIC_CRYPTO_HANDSHAKE => Some(gnutls::LEVEL_HANDSHAKE),
        QUIC_CRYPTO_APP => Some(gnutls::LEVEL_APPLICATION),
        _ => None,
    }
}

fn tls_cipher(gnutls_cipher: c_int) -> Option<u32> {
    match gnutls_cipher {
        gnutls::GNUTLS_CIPHER_AES_128_GCM => Some(TLS_CIPHER_AES_GCM_128),
        gnutls::GNUTLS_CIPHER_AES_256_GCM => Some(TLS_CIPHER_AES_GCM_256),
        gnutls::GNUTLS_CIPHER_AES_128_CCM => Some(TLS_CIPHER_AES_CCM_128),
        gnutls::GNUTLS_CIPHER_CHACHA20_POLY1305 => Some(TLS_CIPHER_CHACHA20_POLY1305),
        _ => None,
    }
}

/// The engine state of a session, if a handshake is in progress on it
///
/// # Safety
/// `s` is a live GnuTLS session of `gt`.
unsafe fn ctx_of<'a>(gt: &Gnutls, s: Session) -> Option<&'a Ctx> {
    let mut p: *mut c_void = ptr::null_mut();
    // SAFETY: live session; p receives the stored pointer.
    let r = unsafe { (gt.gnutls_ext_get_data)(s, TP_EXT as c_uint, &mut p) };
    if r != 0 || p.is_null() {
        return None;
    }
    // SAFETY: only `init` stores this pointer (a leaked Box<Ctx>), and `deinit` clears it
    // before freeing.
    Some(unsafe { &*p.cast::<Ctx>() })
}

/// The loaded library for a callback (it is loaded: a session exists)
fn lib() -> Option<&'static Gnutls> {
    gnutls::get().ok()
}

fn fail(ctx: &Ctx, errno: c_int) -> c_int {
    if ctx.cb_error.get() == 0 {
        ctx.cb_error.set(-errno);
    }
    -1
}

unsafe extern "C" fn on_secret(
    s: Session,
    level: c_int,
    rx: *const c_void,
    tx: *const c_void,
    len: size_t,
) -> c_int {
    let Some(gt) = lib() else { return -1 };
    // SAFETY: GnuTLS calls back with its live session.
    let Some(ctx) = (unsafe { ctx_of(gt, s) }) else {
        return 0;
    };
    if ctx.completed.get() {
        // Key updates after the handshake are the socket's business ("quic ku").
        return 0;
    }
    let Some(qlevel) = quic_level(level) else {
        return fail(ctx, libc::EINVAL);
    };
    let early = qlevel == QUIC_CRYPTO_EARLY;
    // 0-RTT goes one way only: the client's send key and the server's receive key (the
    // socket refuses the other direction). GnuTLS hands over just that one.
    let (rx, tx) = match (early, ctx.server) {
        (true, true) => (rx, ptr::null()),
        (true, false) => (ptr::null(), tx),
        (false, _) => (rx, tx),
    };
    // The early secret is derived with the resumed session's cipher, not yet the negotiated
    // one (which a server may still choose differently).
    // SAFETY: live session.
    let cipher = unsafe {
        if early {
            (gt.gnutls_early_cipher_get)(s)
        } else {
            (gt.gnutls_cipher_get)(s)
        }
    };
    let Some(ty) = tls_cipher(cipher) else {
        gnutls::log(format_args!(
            "handshake: negotiated cipher has no QUIC AEAD"
        ));
        return fail(ctx, libc::EINVAL);
    };
    for (send, secret) in [(true, tx), (false, rx)] {
        if secret.is_null() {
            continue;
        }
        if qlevel == QUIC_CRYPTO_HANDSHAKE && send && ctx.hs_tx_installed.get() {
            // Already taken from the keylog hook (early data, see `Ctx::hs_tx_secret`)
            continue;
        }
        // SAFETY: GnuTLS passes `len` readable secret bytes.
        let bytes = unsafe { std::slice::from_raw_parts(secret.cast::<u8>(), len) };
        if let Err(e) = install_secret(ctx, send, qlevel, ty, bytes) {
            return fail(ctx, e);
        }
        if qlevel == QUIC_CRYPTO_HANDSHAKE {
            if send {
                ctx.hs_tx_installed.set(true);
            } else {
                ctx.hs_rx_installed.set(true);
            }
        }
    }
    if qlevel == QUIC_CRYPTO_HANDSHAKE {
        if let Err(e) = install_held_handshake_send(ctx, ty) {
            return fail(ctx, e);
        }
    }
    if !rx.is_null() && qlevel == QUIC_CRYPTO_APP {
        if ctx.server {
            // libquic's server sends its session ticket now; a session without ticket
            // support (GNUTLS_NO_TICKETS, no ticket key) makes this a no-op.
            // SAFETY: live session.
            let r = unsafe { (gt.gnutls_session_ticket_send)(s, 1, 0) };
            if r != 0 {
                gnutls::log(format_args!("handshake: ticket: {}", gt.strerror(r)));
                return r;
            }
        }
        ctx.completed.set(true);
    }
    0
}

/// setsockopt(CRYPTO_SECRET) for one direction of `qlevel`; Err(errno) when refused
fn install_secret(ctx: &Ctx, send: bool, qlevel: u8, ty: u32, secret: &[u8]) -> Result<(), c_int> {
    if secret.len() > QUIC_CRYPTO_SECRET_BUFFER_SIZE {
        return Err(libc::EINVAL);
    }
    let mut cs = [0u8; CRYPTO_SECRET_LEN];
    cs[0] = u8::from(send);
    cs[1] = qlevel;
    cs[4..8].copy_from_slice(&ty.to_ne_bytes());
    cs[8..8 + secret.len()].copy_from_slice(secret);
    let r = set_quic_opt(ctx.fd, QUIC_SOCKOPT_CRYPTO_SECRET, &cs);
    // Don't leave the secret in a dead stack buffer.
    // SAFETY: volatile write to our own array so it isn't optimised away.
    unsafe { ptr::write_volatile(&mut cs, [0u8; CRYPTO_SECRET_LEN]) };
    if let Err(err) = r {
        gnutls::log(format_args!(
            "handshake: setsockopt(CRYPTO_SECRET level {qlevel}) failed: errno {err}"
        ));
        return Err(err);
    }
    gnutls::log(format_args!(
        "handshake: {} secret of level {qlevel} installed",
        if send { "send" } else { "receive" }
    ));
    Ok(())
}

/// Client with early data in flight: the HANDSHAKE send secret from the keylog hook once the
/// receive secret is in and GnuTLS has not handed the send secret over itself
fn install_held_handshake_send(ctx: &Ctx, ty: u32) -> Result<(), c_int> {
    if ctx.server || !ctx.hs_rx_installed.get() || ctx.hs_tx_installed.get() {
        return Ok(());
    }
    let mut held = ctx.hs_tx_secret.borrow_mut();
    if held.is_empty() {
        return Ok(());
    }
    let r = install_secret(ctx, true, QUIC_CRYPTO_HANDSHAKE, ty, &held);
    for b in held.iter_mut() {
        // SAFETY: a valid byte of our own buffer; volatile so the wipe stays.
        unsafe { ptr::write_volatile(b, 0) };
    }
    held.clear();
    r?;
    ctx.hs_tx_installed.set(true);
    Ok(())
}

/// GnuTLS reports each traffic secret here as it derives it (NSS key log labels); the
/// engine keeps the client's handshake secret (see `Ctx::hs_tx_secret`) and passes
/// everything on to the hook that was there before
unsafe extern "C" fn on_keylog(s: Session, label: *const c_char, secret: *const Datum) -> c_int {
    let Some(gt) = lib() else { return -1 };
    // SAFETY: GnuTLS calls back with its live session.
    let Some(ctx) = (unsafe { ctx_of(gt, s) }) else {
        return 0;
    };
    if !ctx.server && !label.is_null() && !secret.is_null() {
        // SAFETY: GnuTLS passes a NUL-terminated label and a datum of `size` bytes.
        let (label, d) = unsafe { (std::ffi::CStr::from_ptr(label).to_bytes(), &*secret) };
        if label == b"CLIENT_HANDSHAKE_TRAFFIC_SECRET" && !d.data.is_null() {
            // SAFETY: as above.
            let bytes = unsafe { std::slice::from_raw_parts(d.data, d.size as usize) };
            {
                let mut held = ctx.hs_tx_secret.borrow_mut();
                held.clear();
                held.extend_from_slice(bytes);
            }
            // GnuTLS may report the receive secret before this one
            // SAFETY: live session.
            if let Some(ty) = tls_cipher(unsafe { (gt.gnutls_cipher_get)(s) }) {
                if let Err(e) = install_held_handshake_send(ctx, ty) {
                    return fail(ctx, e);
                }
            }
        }
    }
    match ctx.prev_keylog {
        // SAFETY: the session's previous hook, called with what GnuTLS gave us.
        Some(f) => unsafe { f(s, label, secret) },
        None => 0,
    }
}

unsafe extern "C" fn on_handshake_out(
    s: Session,
    level: c_int,
    htype: c_int,
    data: *const c_void,
    len: size_t,
) -> c_int {
    let Some(gt) = lib() else { return -1 };
    // SAFETY: GnuTLS calls back with its live session.
    let Some(ctx) = (unsafe { ctx_of(gt, s) }) else {
        return 0;
    };
    if htype == gnutls::GNUTLS_HANDSHAKE_KEY_UPDATE {
        return 0;
    }
    let Some(qlevel) = quic_level(level) else {
        return fail(ctx, libc::EINVAL);
    };
    let bytes = if data.is_null() || len == 0 {
        Vec::new()
    } else {
        // SAFETY: GnuTLS passes `len` readable bytes.
        unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }.to_vec()
    };
    ctx.out.borrow_mut().push_back((qlevel, bytes));
    0
}

/// In QUIC mode GnuTLS reports the alerts it would send here instead of writing records
unsafe extern "C" fn on_alert(_s: Session, level: c_int, alevel: c_int, desc: c_int) -> c_int {
    gnutls::log(format_args!(
        "handshake: TLS alert {desc} (level {alevel}) at encryption level {level}"
    ));
    0
}

/// getsockopt(SOL_QUIC, `name`) into `buf`: the length written, or the errno
fn get_quic_opt(fd: c_int, name: c_int, buf: &mut [u8]) -> Result<usize, c_int> {
    let mut len = buf.len() as socklen_t;
    // SAFETY: buf is writable for len bytes and len is a valid socklen_t.
    let r =
        unsafe { api::quicsock_getsockopt(fd, SOL_QUIC, name, buf.as_mut_ptr().cast(), &mut len) };
    if r != 0 {
        return Err(sys::errno());
    }
    Ok(len as usize)
}

/// setsockopt(SOL_QUIC, `name`, `value`): Ok, or the errno
fn set_quic_opt(fd: c_int, name: c_int, value: &[u8]) -> Result<(), c_int> {
    // SAFETY: value is readable for its length.
    let r = unsafe {
        api::quicsock_setsockopt(
            fd,
            SOL_QUIC,
            name,
            value.as_ptr().cast(),
            value.len() as socklen_t,
        )
    };
    if r != 0 {
        return Err(sys::errno());
    }
    Ok(())
}

unsafe extern "C" fn on_tp_send(s: Session, out: *mut c_void) -> c_int {
    let Some(gt) = lib() else { return -1 };
    // SAFETY: live session.
    let fd = unsafe { (gt.gnutls_transport_get_int)(s) };
    let mut buf = [0u8; 512];
    let len = match get_quic_opt(fd, QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, &mut buf) {
        Ok(len) => len,
        Err(err) => {
            gnutls::log(format_args!(
                "handshake: getsockopt(TRANSPORT_PARAM_EXT) failed: errno {err}"
            ));
            // SAFETY: live session.
            return match unsafe { ctx_of(gt, s) } {
                Some(ctx) => fail(ctx, err),
                None => -1,
            };
        }
    };
    let n = len.min(buf.len());
    // SAFETY: `out` is GnuTLS's extension buffer; buf holds n bytes.
    unsafe { (gt.gnutls_buffer_append_data)(out, buf.as_ptr().cast(), n) }
}

unsafe extern "C" fn on_tp_recv(s: Session, data: *const u8, len: size_t) -> c_int {
    let Some(gt) = lib() else { return -1 };
    // SAFETY: live session.
    let fd = unsafe { (gt.gnutls_transport_get_int)(s) };
    if data.is_null() {
        return -1;
    }
    // SAFETY: GnuTLS passes `len` readable bytes at `data`.
    let params = unsafe { std::slice::from_raw_parts(data, len) };
    if let Err(err) = set_quic_opt(fd, QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, params) {
        gnutls::log(format_args!(
            "handshake: setsockopt(TRANSPORT_PARAM_EXT) refused the peer's parameters: errno {err}"
        ));
        // SAFETY: live session.
        return match unsafe { ctx_of(gt, s) } {
            Some(ctx) => fail(ctx, err),
            None => -1,
        };
    }
    0
}

/// GnuTLS never reads records itself in QUIC mode; a pull would be a bug, not a read of
/// the application's stream data
unsafe extern "C" fn no_pull(_p: *mut c_void, _b: *mut c_void, _n: size_t) -> ssize_t {
    sys::set_errno(libc::EAGAIN);
    -1
}

/// Feed bytes of `level` to GnuTLS and let it advance (libquic's quic_handshake_process)
///
/// # Safety
/// `s` is a live session of `gt`.
unsafe fn process(gt: &Gnutls, s: Session, ctx: Option<&Ctx>, level: u8, data: &[u8]) -> c_int {
    let Some(l) = tls_level(level) else {
        return -libc::EINVAL;
    };
    let mut r = 0;
    if !data.is_empty() {
        // SAFETY: live session; data readable.
        r = unsafe { (gt.gnutls_handshake_write)(s, l, data.as_ptr().cast(), data.len()) };
    }
    if r == 0 {
        // SAFETY: live session.
        r = unsafe { (gt.gnutls_handshake)(s) };
    }
    // SAFETY: gnutls_error_is_fatal is a pure function.
    if r >= 0 || unsafe { (gt.gnutls_error_is_fatal)(r) } == 0 {
        return 0;
    }
    if let Some(e) = ctx.map(|c| c.cb_error.get()).filter(|&e| e != 0) {
        return e;
    }
    // SAFETY: live session.
    unsafe { (gt.gnutls_alert_send_appropriate)(s, r) };
    gnutls::log(format_args!("handshake: TLS failed: {}", gt.strerror(r)));
    r
}

impl Ctx {
    /// Prepare the next step: queued sends first, then a receive until complete
    fn next_step(&self) -> *mut QuicHandshakeStep {
        let out = self.out.borrow();
        // SAFETY: between steps nobody else touches io (the caller's syscall is over).
        let io = unsafe { &mut *self.io.get() };
        io.msg = unsafe_zeroed_msghdr();
        io.cmsg = [0; 4];
        let (op, flags) = if let Some((level, data)) = out.front() {
            io.iov = iovec {
                iov_base: data.as_ptr() as *mut c_void,
                iov_len: data.len(),
            };
            io.msg.msg_iov = &mut io.iov;
            io.msg.msg_iovlen = 1;
            io.msg.msg_control = io.cmsg.as_mut_ptr().cast();
            let space = cmsg_space(1);
            io.msg.msg_controllen = space;
            // SAFETY: the control buffer (32 bytes) holds CMSG_SPACE(1) = 24 bytes.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&io.msg);
                (*c).cmsg_level = SOL_QUIC;
                (*c).cmsg_type = QUIC_HANDSHAKE_INFO;
                (*c).cmsg_len = libc::CMSG_LEN(1) as usize;
                *libc::CMSG_DATA(c) = *level;
            }
            self.next.set(Some(Next::Send));
            (QUIC_HANDSHAKE_STEP_OP_SENDMSG, libc::MSG_NOSIGNAL)
        } else if !self.completed.get() {
            io.iov = iovec {
                iov_base: io.buf.as_mut_ptr().cast(),
                iov_len: io.buf.len(),
            };
            io.msg.msg_iov = &mut io.iov;
            io.msg.msg_iovlen = 1;
            io.msg.msg_control = io.cmsg.as_mut_ptr().cast();
            io.msg.msg_controllen = size_of::<[u64; 4]>();
            self.next.set(Some(Next::Recv));
            (QUIC_HANDSHAKE_STEP_OP_RECVMSG, libc::MSG_DONTWAIT)
        } else {
            self.next.set(None);
            return ptr::null_mut();
        };
        io.step = QuicHandshakeStep {
            op,
            msg: &mut io.msg,
            flags,
            retval: 0,
        };
        &mut io.step
    }

    /// Consume the caller's result of the current step
    fn finish_step(&self, next: Next) -> c_int {
        // SAFETY: the caller's syscall for this step is over.
        let io = unsafe { &mut *self.io.get() };
        let ret = io.step.retval;
        match next {
            Next::Send => {
                let mut out = self.out.borrow_mut();
                let Some((level, data)) = out.pop_front() else {
                    return -libc::EINVAL;
                };
                if ret < 0 {
                    gnutls::log(format_args!(
                        "handshake: sendmsg(level {level}) failed: errno {}",
                        -ret
                    ));
                    return ret as c_int;
                }
                if ret as usize != data.len() {
                    return -libc::EMSGSIZE;
                }
                gnutls::log(format_args!("handshake: sent {ret} bytes at level {level}"));
                0
            }
            Next::Recv => {
                if ret < 0 {
                    gnutls::log(format_args!("handshake: recvmsg failed: errno {}", -ret));
                    return ret as c_int;
                }
                if ret == 0 {
                    return -libc::ECONNRESET;
                }
                let Some(level) = handshake_level(&io.msg) else {
                    gnutls::log(format_args!(
                        "handshake: received a message without QUIC_HANDSHAKE_INFO"
                    ));
                    return -libc::EBADMSG;
                };
                let n = (ret as usize).min(io.buf.len());
                gnutls::log(format_args!(
                    "handshake: received {n} bytes at level {level}"
                ));
                // The received bytes move out of io: GnuTLS callbacks don't touch io, but
                // the next step will, and GnuTLS may be handed a fresh buffer then.
                let data = io.buf[..n].to_vec();
                // SAFETY: self.session is live while the engine runs.
                unsafe { process(self.gt, self.session, Some(self), level, &data) }
            }
        }
    }
}

fn unsafe_zeroed_msghdr() -> msghdr {
    // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
    unsafe { std::mem::zeroed() }
}

fn cmsg_space(n: usize) -> usize {
    // SAFETY: CMSG_SPACE is arithmetic.
    unsafe { libc::CMSG_SPACE(n as u32) as usize }
}

/// The level of a received handshake message; None for anything else (a stream message, an
/// event, or a truncated control buffer)
fn handshake_level(m: &msghdr) -> Option<u8> {
    if m.msg_flags & libc::MSG_CTRUNC != 0 || m.msg_control.is_null() {
        return None;
    }
    // SAFETY: the control buffer is ours and msg_controllen was set by recvmsg within it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(m);
        if c.is_null() || (*c).cmsg_level != SOL_QUIC || (*c).cmsg_type != QUIC_HANDSHAKE_INFO {
            return None;
        }
        Some(*libc::CMSG_DATA(c))
    }
}

/// libquic `quic_handshake_init`: hook the session up and return the first step
///
/// # Safety
/// `s` is a live GnuTLS session whose transport int is a QUIC socket; `pstep` valid.
pub(crate) unsafe fn init(s: Session, pstep: *mut *mut QuicHandshakeStep) -> c_int {
    // SAFETY: pstep valid or null per contract.
    if pstep.is_null() || unsafe { !(*pstep).is_null() } {
        return -libc::EINVAL;
    }
    let gt = match gnutls::get() {
        Ok(g) => g,
        Err(e) => {
            gnutls::log(format_args!("{e}"));
            return -libc::ENOPKG;
        }
    };
    // SAFETY: live session per contract.
    let fd = unsafe { (gt.gnutls_transport_get_int)(s) };
    // Servers can't read a NEW_TOKEN token: libquic's (and the kernel's) role test.
    let mut tok = [0u8; 128];
    let server = get_quic_opt(fd, QUIC_SOCKOPT_TOKEN, &mut tok).is_err();
    if server {
        // A server waits for the ClientHello. On a socket that can't run TLS in the
        // application (the service already runs its own TLS there) none would ever come:
        // ask for our transport parameters now and fail at once instead of after 30 s.
        let mut tp = [0u8; 512];
        if let Err(e) = get_quic_opt(fd, QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, &mut tp) {
            gnutls::log(format_args!(
                "handshake: this socket can't run TLS in the application: errno {e}"
            ));
            return -e;
        }
    }
    // SAFETY: live session; static name; callbacks match GnuTLS's prototypes.
    let r = unsafe {
        (gt.gnutls_session_ext_register)(
            s,
            c"quic_transport_parameters".as_ptr(),
            TP_EXT,
            gnutls::GNUTLS_EXT_TLS,
            on_tp_recv,
            on_tp_send,
            ptr::null(),
            ptr::null(),
            ptr::null(),
            gnutls::GNUTLS_EXT_FLAG_TLS
                | gnutls::GNUTLS_EXT_FLAG_CLIENT_HELLO
                | gnutls::GNUTLS_EXT_FLAG_EE,
        )
    };
    if r != 0 {
        gnutls::log(format_args!(
            "handshake: extension 0x39: {}",
            gt.strerror(r)
        ));
        return r;
    }
    let ctx = Box::new(Ctx {
        gt,
        session: s,
        fd,
        server,
        completed: Cell::new(false),
        cb_error: Cell::new(0),
        out: RefCell::new(VecDeque::new()),
        next: Cell::new(None),
        io: UnsafeCell::new(Io {
            step: QuicHandshakeStep {
                op: 0,
                msg: ptr::null_mut(),
                flags: 0,
                retval: 0,
            },
            msg: unsafe_zeroed_msghdr(),
            iov: iovec {
                iov_base: ptr::null_mut(),
                iov_len: 0,
            },
            cmsg: [0; 4],
            buf: vec![0u8; RECV_BUF],
        }),
        // SAFETY: live session.
        prev_keylog: unsafe { (gt.gnutls_session_get_keylog_function)(s) },
        hs_tx_secret: RefCell::new(Vec::new()),
        hs_rx_installed: Cell::new(false),
        hs_tx_installed: Cell::new(false),
    });
    let raw = Box::into_raw(ctx);
    // SAFETY: live session; callbacks match GnuTLS's prototypes; raw stays valid until
    // deinit takes it back.
    unsafe {
        (gt.gnutls_ext_set_data)(s, TP_EXT as c_uint, raw.cast());
        (gt.gnutls_handshake_set_secret_function)(s, on_secret);
        (gt.gnutls_handshake_set_read_function)(s, on_handshake_out);
        (gt.gnutls_alert_set_read_function)(s, on_alert);
        (gt.gnutls_session_set_keylog_function)(s, Some(on_keylog));
    }
    // SAFETY: raw is the live Box we just stored.
    let ctx = unsafe { &*raw };
    if !server {
        // The client speaks first: produce the ClientHello.
        // SAFETY: live session.
        let r = unsafe { process(gt, s, Some(ctx), QUIC_CRYPTO_INITIAL, &[]) };
        if r != 0 {
            // SAFETY: live session, ctx not used after.
            unsafe { deinit(s) };
            return r;
        }
    }
    // SAFETY: pstep valid.
    unsafe { *pstep = ctx.next_step() };
    0
}

/// libquic `quic_handshake_step`: take the caller's result of `*pstep`, return the next step
/// (NULL when the handshake is complete)
///
/// # Safety
/// `s` is a session `init` was called on; `pstep` valid.
pub(crate) unsafe fn step(s: Session, pstep: *mut *mut QuicHandshakeStep) -> c_int {
    let Ok(gt) = gnutls::get() else {
        return -libc::ENOPKG;
    };
    // SAFETY: live session per contract.
    let Some(ctx) = (unsafe { ctx_of(gt, s) }) else {
        return -libc::EINVAL;
    };
    // SAFETY: io is only read here.
    let expected: *mut QuicHandshakeStep = unsafe { &mut (*ctx.io.get()).step };
    // SAFETY: pstep valid or null per contract.
    if pstep.is_null() || unsafe { *pstep } != expected {
        return -libc::EINVAL;
    }
    let Some(next) = ctx.next.take() else {
        return -libc::EINVAL;
    };
    let r = ctx.finish_step(next);
    if r != 0 {
        return r;
    }
    // SAFETY: pstep valid.
    unsafe { *pstep = ctx.next_step() };
    0
}

/// libquic `quic_handshake_deinit`: unhook and free the engine state
///
/// # Safety
/// `s` is a live session.
pub(crate) unsafe fn deinit(s: Session) {
    let Ok(gt) = gnutls::get() else { return };
    let mut p: *mut c_void = ptr::null_mut();
    // SAFETY: live session.
    if unsafe { (gt.gnutls_ext_get_data)(s, TP_EXT as c_uint, &mut p) } != 0 || p.is_null() {
        return;
    }
    // SAFETY: live session; clearing first so no callback can see a freed pointer.
    unsafe { (gt.gnutls_ext_set_data)(s, TP_EXT as c_uint, ptr::null_mut()) };
    // SAFETY: p is the Box leaked by init, reclaimed once (the pointer is cleared above).
    let ctx = unsafe { Box::from_raw(p.cast::<Ctx>()) };
    // The application's session keeps logging keys as before the handshake.
    // SAFETY: live session.
    unsafe { (gt.gnutls_session_set_keylog_function)(s, ctx.prev_keylog) };
}

/// Wait until `fd` has `events` or the slice ends; EINTR counts as a wake-up
fn wait(fd: c_int, events: i16, deadline: Instant) -> Result<(), c_int> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(-libc::ETIMEDOUT);
    }
    let ms = left.as_millis().min(u128::from(POLL_MS)) as c_int;
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut p, 1, ms) } < 0 && sys::errno() != libc::EINTR {
        return Err(-sys::errno());
    }
    Ok(())
}

/// libquic `quic_handshake`: the whole handshake, blocking (1 s polls, 30 s in all)
///
/// # Safety
/// `s` is a live GnuTLS session whose transport int is the QUIC socket.
pub(crate) unsafe fn run(s: Session) -> c_int {
    let Ok(gt) = gnutls::get() else {
        return -libc::ENOPKG;
    };
    // SAFETY: live session per contract.
    let fd = unsafe { (gt.gnutls_transport_get_int)(s) };
    let mut st: *mut QuicHandshakeStep = ptr::null_mut();
    // SAFETY: per contract.
    let r = unsafe { init(s, &mut st) };
    if r != 0 {
        return r;
    }
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let r = loop {
        if st.is_null() {
            break 0;
        }
        // SAFETY: st points at the ctx's step, valid until the next step/deinit.
        let cur = unsafe { &mut *st };
        let (n, events) = match cur.op {
            // SAFETY: the step's msghdr points into the ctx's live buffers.
            QUIC_HANDSHAKE_STEP_OP_RECVMSG => unsafe {
                (api::quicsock_recvmsg(fd, cur.msg, cur.flags), libc::POLLIN)
            },
            // SAFETY: as above.
            QUIC_HANDSHAKE_STEP_OP_SENDMSG => unsafe {
                (api::quicsock_sendmsg(fd, cur.msg, cur.flags), libc::POLLOUT)
            },
            _ => break -libc::EUCLEAN,
        };
        if n < 0 {
            let e = sys::errno();
            if e == libc::EINTR {
                continue;
            }
            if e == libc::EAGAIN {
                if let Err(e) = wait(fd, events, deadline) {
                    gnutls::log(format_args!("handshake: no answer from the peer"));
                    break e;
                }
                continue;
            }
            cur.retval = -(e as ssize_t);
        } else {
            cur.retval = n;
        }
        // SAFETY: per contract; st is the current step.
        let r = unsafe { step(s, &mut st) };
        if r != 0 {
            break r;
        }
    };
    // SAFETY: live session.
    unsafe { deinit(s) };
    r
}

/// Split libquic's comma list of ALPNs (spaces after commas allowed)
pub(crate) fn parse_alpns(list: &[u8]) -> Result<Vec<Vec<u8>>, c_int> {
    if list.len() >= ALPN_MAX_LEN {
        return Err(-libc::EINVAL);
    }
    let names: Vec<Vec<u8>> = list
        .split(|&b| b == b',')
        .map(|n| n.trim_ascii_start().to_vec())
        .filter(|n| !n.is_empty())
        .collect();
    if names.len() > ALPN_MAX_COUNT {
        return Err(-libc::EINVAL);
    }
    Ok(names)
}

/// gnutls_alpn_set_protocols with a comma list (mandatory, like libquic)
///
/// # Safety
/// `s` is a live session of `gt`.
pub(crate) unsafe fn set_alpns(gt: &Gnutls, s: Session, list: &[u8]) -> c_int {
    let names = match parse_alpns(list) {
        Ok(n) => n,
        Err(e) => return e,
    };
    if names.is_empty() {
        return 0;
    }
    let datums: Vec<Datum> = names
        .iter()
        .map(|n| Datum {
            data: n.as_ptr() as *mut u8,
            size: n.len() as c_uint,
        })
        .collect();
    // SAFETY: live session; GnuTLS copies the names.
    unsafe {
        (gt.gnutls_alpn_set_protocols)(
            s,
            datums.as_ptr(),
            datums.len() as c_uint,
            gnutls::GNUTLS_ALPN_MANDATORY,
        )
    }
}

/// The common setup of our own sessions: QUIC_PRIORITY, ALPN, the socket as transport
///
/// # Safety
/// `s` is a live session of `gt`.
unsafe fn configure(gt: &Gnutls, s: Session, fd: c_int, alpns: Option<&[u8]>) -> c_int {
    let mut err: *const c_char = ptr::null();
    // SAFETY: live session; static priority string.
    let r = unsafe { (gt.gnutls_priority_set_direct)(s, gnutls::QUIC_PRIORITY.as_ptr(), &mut err) };
    if r != 0 {
        return r;
    }
    if let Some(a) = alpns {
        // SAFETY: live session.
        let r = unsafe { set_alpns(gt, s, a) };
        if r != 0 {
            return r;
        }
    }
    // SAFETY: live session.
    unsafe {
        (gt.gnutls_transport_set_int2)(s, fd, fd);
        (gt.gnutls_transport_set_pull_function)(s, no_pull);
    }
    0
}

fn load() -> Result<&'static Gnutls, c_int> {
    gnutls::get().map_err(|e| {
        gnutls::log(format_args!("PSK handshake unavailable: {e}"));
        -libc::ENOPKG
    })
}

fn parse_file(text: &[u8], max: Option<usize>) -> Result<Vec<PskEntry>, c_int> {
    psk::parse(text, max).map_err(|e| {
        gnutls::log(format_args!("{e}"));
        -libc::EINVAL
    })
}

/// A GnuTLS session freed on drop
struct OwnedSession(&'static Gnutls, Session);

impl Drop for OwnedSession {
    fn drop(&mut self) {
        // SAFETY: the session was created by gnutls_init and is freed once.
        unsafe { (self.0.gnutls_deinit)(self.1) };
    }
}

fn new_session(gt: &'static Gnutls, flags: c_uint) -> Result<OwnedSession, c_int> {
    let mut s: Session = ptr::null_mut();
    // libquic's flags; these PSK sessions never resume, so early data never starts here.
    // SAFETY: s receives the new session.
    let r = unsafe {
        (gt.gnutls_init)(
            &mut s,
            flags | gnutls::GNUTLS_ENABLE_EARLY_DATA | gnutls::GNUTLS_NO_END_OF_EARLY_DATA,
        )
    };
    if r != 0 || s.is_null() {
        return Err(if r != 0 {
            r
        } else {
            gnutls::GNUTLS_E_INTERNAL_ERROR
        });
    }
    Ok(OwnedSession(gt, s))
}

/// `quic_client_handshake` with a PSK file: the first entry's identity and key
pub(crate) fn psk_client(
    fd: c_int,
    file: &[u8],
    hostname: Option<&[u8]>,
    alpns: Option<&[u8]>,
) -> c_int {
    if !registry::is_quic(fd) {
        return -libc::ENOTSOCK;
    }
    let entries = match parse_file(file, Some(psk::CLIENT_MAX_ENTRIES)) {
        Ok(e) => e,
        Err(e) => return e,
    };
    let gt = match load() {
        Ok(g) => g,
        Err(e) => return e,
    };
    let first = &entries[0];
    let Ok(identity) = CString::new(first.identity.clone()) else {
        return -libc::EINVAL;
    };
    let mut cred: *mut c_void = ptr::null_mut();
    // SAFETY: cred receives new credentials.
    let r = unsafe { (gt.gnutls_psk_allocate_client_credentials)(&mut cred) };
    if r != 0 {
        return r;
    }
    let key = Datum {
        data: first.key.as_ptr() as *mut u8,
        size: first.key.len() as c_uint,
    };
    let r = (|| {
        // SAFETY: live credentials; GnuTLS copies identity and key.
        let r = unsafe {
            (gt.gnutls_psk_set_client_credentials)(
                cred,
                identity.as_ptr(),
                &key,
                gnutls::GNUTLS_PSK_KEY_RAW,
            )
        };
        if r != 0 {
            return r;
        }
        let sess = match new_session(gt, gnutls::GNUTLS_CLIENT) {
            Ok(s) => s,
            Err(e) => return e,
        };
        // SAFETY: live session and credentials (freed after the session).
        unsafe {
            let r = configure(gt, sess.1, fd, alpns);
            if r != 0 {
                return r;
            }
            let r = (gt.gnutls_credentials_set)(sess.1, gnutls::GNUTLS_CRD_PSK, cred);
            if r != 0 {
                return r;
            }
            if let Some(h) = hostname.filter(|h| !h.is_empty()) {
                let r = (gt.gnutls_server_name_set)(
                    sess.1,
                    gnutls::GNUTLS_NAME_DNS,
                    h.as_ptr().cast(),
                    h.len(),
                );
                if r != 0 {
                    return r;
                }
            }
            run(sess.1)
        }
    })();
    // SAFETY: the session using cred is gone.
    unsafe { (gt.gnutls_psk_free_client_credentials)(cred) };
    r
}

/// Hex for gnutls_hex_decode2, which hands GnuTLS a key in memory it allocated itself (the
/// credentials callback's key is freed with gnutls_free)
fn to_hex(b: &[u8]) -> Vec<u8> {
    const D: &[u8; 16] = b"0123456789abcdef";
    b.iter()
        .flat_map(|&x| [D[usize::from(x >> 4)], D[usize::from(x & 15)]])
        .collect()
}

unsafe extern "C" fn psk_lookup(s: Session, user: *const c_char, key: *mut Datum) -> c_int {
    let Some(gt) = lib() else { return -1 };
    if user.is_null() || key.is_null() {
        return -1;
    }
    // SAFETY: live session; the pointer was set by psk_server to its entries, which outlive
    // the session.
    let entries = unsafe { (gt.gnutls_session_get_ptr)(s) }.cast::<Vec<PskEntry>>();
    if entries.is_null() {
        return -1;
    }
    // SAFETY: as above; GnuTLS passes a NUL-terminated identity.
    let (entries, user) = unsafe { (&*entries, std::ffi::CStr::from_ptr(user).to_bytes()) };
    let Some(e) = entries.iter().find(|e| e.identity == user) else {
        gnutls::log(format_args!(
            "handshake: unknown PSK identity {:?}",
            String::from_utf8_lossy(user)
        ));
        return -1;
    };
    let mut hex = to_hex(&e.key);
    let d = Datum {
        data: hex.as_mut_ptr(),
        size: hex.len() as c_uint,
    };
    // SAFETY: d readable; key is GnuTLS's output datum.
    if unsafe { (gt.gnutls_hex_decode2)(&d, key) } != 0 {
        return -1;
    }
    0
}

/// `quic_server_handshake` without a certificate: a PSK server knowing every entry of the file
pub(crate) fn psk_server(fd: c_int, file: &[u8], alpns: Option<&[u8]>) -> c_int {
    if !registry::is_quic(fd) {
        return -libc::ENOTSOCK;
    }
    let entries = match parse_file(file, None) {
        Ok(e) => Box::new(e),
        Err(e) => return e,
    };
    let gt = match load() {
        Ok(g) => g,
        Err(e) => return e,
    };
    let mut cred: *mut c_void = ptr::null_mut();
    // SAFETY: cred receives new credentials.
    let r = unsafe { (gt.gnutls_psk_allocate_server_credentials)(&mut cred) };
    if r != 0 {
        return r;
    }
    let r = (|| {
        // SAFETY: live credentials; psk_lookup matches the callback prototype.
        unsafe { (gt.gnutls_psk_set_server_credentials_function)(cred, psk_lookup) };
        // No tickets: the service has no ticket key to give (getsockopt(SESSION_TICKET) on
        // a server), and PSK clients resume with their PSK anyway.
        let sess = match new_session(gt, gnutls::GNUTLS_SERVER | gnutls::GNUTLS_NO_TICKETS) {
            Ok(s) => s,
            Err(e) => return e,
        };
        // SAFETY: live session and credentials; `entries` outlives the session.
        unsafe {
            (gt.gnutls_session_set_ptr)(
                sess.1,
                (&*entries as *const Vec<PskEntry>).cast_mut().cast(),
            );
            let r = configure(gt, sess.1, fd, alpns);
            if r != 0 {
                return r;
            }
            let r = (gt.gnutls_credentials_set)(sess.1, gnutls::GNUTLS_CRD_PSK, cred);
            if r != 0 {
                return r;
            }
            run(sess.1)
        }
    })();
    // SAFETY: the session using cred is gone.
    unsafe { (gt.gnutls_psk_free_server_credentials)(cred) };
    r
}

/// libquic `quic_session_get_data`
///
/// # Safety
/// `s` live; `data` valid for `*size` bytes; `size` valid.
pub(crate) unsafe fn session_get_data(s: Session, data: *mut c_void, size: *mut size_t) -> c_int {
    let gt = match load() {
        Ok(g) => g,
        Err(e) => return e,
    };
    // SAFETY: per contract.
    let (fd, cap) = unsafe { ((gt.gnutls_transport_get_int)(s), *size) };
    let mut len = cap.min(socklen_t::MAX as usize) as socklen_t;
    // SAFETY: data valid for *size bytes.
    let r = unsafe {
        api::quicsock_getsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_SESSION_TICKET, data, &mut len)
    };
    if r != 0 {
        return -sys::errno();
    }
    if len == 0 || data.is_null() {
        // SAFETY: size valid.
        unsafe { *size = 0 };
        return 0;
    }
    // SAFETY: getsockopt wrote len <= cap bytes into data.
    let ticket = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len as usize) }.to_vec();
    // SAFETY: live session (no engine state: a ticket after the handshake).
    let r = unsafe { process(gt, s, None, QUIC_CRYPTO_APP, &ticket) };
    if r != 0 {
        return r;
    }
    // SAFETY: per contract.
    unsafe { (gt.gnutls_session_get_data)(s, data, size) }
}

/// libquic `quic_session_set_data`
///
/// # Safety
/// `s` live; `data` valid for `size` bytes.
pub(crate) unsafe fn session_set_data(s: Session, data: *const c_void, size: size_t) -> c_int {
    match load() {
        // SAFETY: per contract.
        Ok(gt) => unsafe { (gt.gnutls_session_set_data)(s, data, size) },
        Err(e) => e,
    }
}

/// libquic `quic_session_get_alpn`
///
/// # Safety
/// `s` live; `alpn` valid for `*size` bytes; `size` valid.
pub(crate) unsafe fn session_get_alpn(s: Session, alpn: *mut c_void, size: *mut size_t) -> c_int {
    let gt = match load() {
        Ok(g) => g,
        Err(e) => return e,
    };
    let mut d = Datum {
        data: ptr::null_mut(),
        size: 0,
    };
    // SAFETY: live session; d receives a pointer into the session.
    let r = unsafe { (gt.gnutls_alpn_get_selected_protocol)(s, &mut d) };
    if r != 0 {
        return r;
    }
    let n = d.size as usize;
    // SAFETY: size valid per contract.
    if unsafe { *size } < n || (alpn.is_null() && n > 0) {
        return -libc::EINVAL;
    }
    // SAFETY: d holds n bytes; alpn has room for them (checked).
    unsafe {
        if n > 0 {
            ptr::copy_nonoverlapping(d.data, alpn.cast::<u8>(), n);
        }
        *size = n;
    }
    0
}

/// libquic `quic_session_set_alpn`
///
/// # Safety
/// `s` live.
pub(crate) unsafe fn session_set_alpn(s: Session, list: &[u8]) -> c_int {
    match load() {
        // SAFETY: per contract.
        Ok(gt) => unsafe { set_alpns(gt, s, list) },
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_struct_has_libquics_layout() {
        // op@0, then the union {msg@8, flags@16, retval@24} on LP64
        assert_eq!(size_of::<QuicHandshakeStep>(), 32);
        assert_eq!(std::mem::offset_of!(QuicHandshakeStep, msg), 8);
        assert_eq!(std::mem::offset_of!(QuicHandshakeStep, flags), 16);
        assert_eq!(std::mem::offset_of!(QuicHandshakeStep, retval), 24);
    }

    #[test]
    fn alpn_lists_split_like_libquic() {
        assert_eq!(
            parse_alpns(b"h3, sample,x").unwrap(),
            vec![b"h3".to_vec(), b"sample".to_vec(), b"x".to_vec()]
        );
        assert_eq!(parse_alpns(b"a,b,c,d,e,f"), Err(-libc::EINVAL));
        assert_eq!(parse_alpns(&[b'a'; 64]), Err(-libc::EINVAL));
        assert!(parse_alpns(b"").unwrap().is_empty());
    }

    #[test]
    fn levels_and_ciphers_map_both_ways() {
        for q in [
            QUIC_CRYPTO_INITIAL,
            QUIC_CRYPTO_EARLY,
            QUIC_CRYPTO_HANDSHAKE,
            QUIC_CRYPTO_APP,
        ] {
            assert_eq!(tls_level(q).and_then(quic_level), Some(q));
        }
        assert_eq!(tls_level(9), None);
        assert_eq!(tls_cipher(gnutls::GNUTLS_CIPHER_AES_256_GCM), Some(52));
        assert_eq!(tls_cipher(1), None);
        assert_eq!(to_hex(&[0x0a, 0xff]), b"0aff");
    }
}
