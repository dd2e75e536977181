//! One QUIC socket: a Unix SEQPACKET connection served by one task
//!
//! The task owns the socket's [`SockOptions`] and answers requests one by one, never parking a
//! request (the library emulates blocking by waiting for a Notify). Work that must wait on the
//! network — reading streams and datagrams, accepting streams and connections, noticing the
//! close — runs in helper "pump" tasks that fill the shared [`RecvQueue`] and wake the session,
//! which then rings the Notify doorbell. Pumps are aborted when the session ends.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use quic_stack::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use quic_stack::connection::ConnectionError;
use quic_stack::crypto::external::{Direction, ExternalTlsError};
use quic_stack::crypto::Suite;
use quic_stack::driver::{
    Connection, DatagramError, Endpoint, RecvStream, SendStream, StreamError,
};
use quic_stack::sockapi::consts::{self, stream_state, IPPROTO_QUIC, SOL_QUIC};
use quic_stack::sockapi::events::{Event, EventMask, RecvKind, RecvQueue};
use quic_stack::sockapi::msg::{self, HandshakeArgs, RawAddr, Request, Response};
use quic_stack::sockapi::options::{
    reply_for, ConnAction, ConnQuery, GetOutcome, SetOutcome, SockOptions, SockState,
};
use quic_stack::sockapi::send::{classify_send, SendTarget, StreamChoice};
use quic_stack::sockapi::types::{
    ConnectionClose, ConnectionIdInfo, StreamInfo, StreamUpdate, TransportParam,
};
use quic_stack::sockapi::Errno;
use quic_stack::{Dir, SpaceId};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Notify;

use super::tickets::{SocketStore, HANDLE_LEN};
use super::watch::Watch;
use super::{SeqPacket, Service, Slot};

/// How long a quic_*_handshake request may take before it fails with ETIMEDOUT
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest stream read a pump makes at once
const READ_CHUNK: usize = 64 * 1024;
/// How soon a writer refused for flow control (and waiting) is told to try again: the driver
/// has no "writable" signal, so the doorbell is a timed retry
const SEND_RETRY: Duration = Duration::from_millis(10);
/// How often the state watcher looks at the connection even without a driver event: the
/// initiator's own key phase flip and a peer's silent limit raises produce none
const WATCH_TICK: Duration = Duration::from_millis(50);

/// State the pumps and the session share
struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the session: the queue, the accept queue or the connection state changed
    wake: Notify,
    /// Wakes stream pumps waiting for room in the receive queue
    space: Notify,
    /// Wakes stream pumps to check for STOP_SENDING requests
    stop: Notify,
    rcvbuf: usize,
    backlog_cap: usize,
    /// The pumps of this socket
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// What the state watcher last reported (see `watch`); locked inside the driver's lock,
    /// never the other way round
    watch: Mutex<Option<Watch>>,
    /// Streams we send on, for STREAM_MAX_DATA; same lock order as `watch`
    watched: Mutex<BTreeSet<u64>>,
    /// Streams we finished (FIN) or reset, by the STREAM_UPDATE state and final size to
    /// report once the core frees their sending half (all data, or the RESET_STREAM,
    /// acknowledged)
    ended: Mutex<HashMap<u64, (u8, u64)>>,
    /// Receive streams whose pump has not delivered the FIN yet (candidates for
    /// RECV_SIZE_KNOWN); same lock order as `watch`, and taken inside `inner` by the pump
    /// that delivers the FIN, so the watcher's check under `inner` orders SIZE_KNOWN before
    /// RECVD
    reading: Mutex<BTreeSet<u64>>,
    /// Handles of session tickets that arrived (rustls reports them inside the driver's lock,
    /// so they wait here rather than in `inner`)
    tickets: Mutex<Vec<Vec<u8>>>,
    /// Pumps that move received stream data and datagrams into the queue (see `PumpGuard`)
    pumps: std::sync::atomic::AtomicUsize,
    /// Rung when the last of them ends
    pumps_done: Notify,
}

/// Counts a running receive pump: when the peer closes, what its connection already received
/// is the application's to read (the kernel keeps it queued), so the socket is marked closed
/// only after the pumps have moved it
struct PumpGuard(Arc<Shared>);

impl PumpGuard {
    fn new(sh: &Arc<Shared>) -> Self {
        sh.pumps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(sh.clone())
    }
}

impl Drop for PumpGuard {
    fn drop(&mut self) {
        if self
            .0
            .pumps
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            self.0.pumps_done.notify_waiters();
        }
    }
}

/// How long a socket's close waits for its written stream data to leave
const CLOSE_FLUSH_LIMIT: Duration = Duration::from_secs(1);

/// How long a peer's close waits for the receive pumps; one blocked on a full queue cannot
/// finish until the application reads
const PUMP_DRAIN_LIMIT: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Inner {
    queue: RecvQueue,
    events: EventMask,
    /// Listener: connections waiting for accept()
    pending: VecDeque<Connection>,
    backlog: usize,
    /// Our sending halves by stream id (opened by us or accepted bidirectional streams)
    send: HashMap<u64, SendStream>,
    /// Bytes written so far per sending half in `send` (the final size once it ends)
    written: HashMap<u64, u64>,
    /// Streams opened by a waiting task while the application was refused (see `open`)
    preopened: HashMap<Dir, VecDeque<(SendStream, Option<RecvStream>)>>,
    /// STOP_SENDING requests for the pump that owns the receiving half
    stop: HashMap<u64, u64>,
    /// The connection ended (either side); the session applies it to its options
    peer_close: Option<ConnectionClose>,
    closed: bool,
    /// A refused writer that waits may try again: ring POLLOUT
    pollout: bool,
    /// Directions with a task already waiting for stream credit (one each is enough)
    open_waiting: Vec<Dir>,
    /// External TLS completed: from now on the connection pumps report the connection's end
    external_established: bool,
    /// Accepted socket: quic_server_handshake handed the handshake to the service's TLS, so
    /// the handshake pump stands down (its queued bytes were dropped)
    builtin_tls: bool,
    /// Client: a NEW_TOKEN token arrived; the session stores it for QUIC_SOCKOPT_TOKEN
    new_token: Option<Vec<u8>>,
}

impl Shared {
    /// Run a pump for this socket; it is aborted when the socket ends. Finished pumps are
    /// pruned here, so a long connection with many streams doesn't accumulate handles.
    fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(f).abort_handle();
        let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        t.retain(|h| !h.is_finished());
        t.push(h);
    }

    /// Wait until no receive pump runs
    async fn pumps_finished(&self) {
        loop {
            let mut done = pin!(self.pumps_done.notified());
            done.as_mut().enable();
            if self.pumps.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }

    fn abort_all(&self) {
        let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for h in t.drain(..) {
            h.abort();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn readable(&self) -> bool {
        let i = self.lock();
        !i.queue.is_empty() || !i.pending.is_empty()
    }

    /// Ask the session to ring POLLOUT for a waiting writer
    fn ring_pollout(&self) {
        self.lock().pollout = true;
        self.wake.notify_one();
    }

    /// Wait until the receive queue has room (back-pressure onto QUIC flow control)
    async fn wait_space(&self) {
        loop {
            let mut n = pin!(self.space.notified());
            n.as_mut().enable();
            if self.lock().queue.queued_bytes() < self.rcvbuf {
                return;
            }
            n.await;
        }
    }
}

struct Session {
    unix: SeqPacket,
    svc: Arc<Service>,
    uid: u32,
    _slot: Slot,
    opts: SockOptions,
    family: u16,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    endpoint: Option<Endpoint>,
    conn: Option<Connection>,
    shared: Arc<Shared>,
    /// The stream a send without stream info continues (the last one not finished)
    active: Option<u64>,
    /// Past the highest stream id we opened, per direction
    next_open: HashMap<Dir, u64>,
    /// A Notify may be sitting unread in the application's fd
    notified: bool,
    hup_sent: bool,
    /// The listener's accept pump is running
    acceptor: bool,
    /// Client: the server name of the handshake (the NEW_TOKEN store's key)
    server_name: String,
    /// Listener and its accepted sockets: TLS session state for resumption, shared by every
    /// server config the listener gets (each quic_server_handshake installs a new one)
    server_sessions: Arc<dyn rustls::server::StoresServerSessions>,
    /// Client: the application set the server's saved transport parameters
    /// (TRANSPORT_PARAM with remote=1), so stream data may be written before the handshake
    /// and leaves as 0-RTT once the EARLY secret is installed
    remembered: bool,
}

/// Serve a client that connected to the service: the first request must be Socket
pub(super) async fn serve_new(svc: Arc<Service>, unix: SeqPacket) {
    let mut buf = vec![0u8; msg::MAX_MESSAGE + 1];
    let n = match unix.recv(&mut buf).await {
        Ok(n) if n > 0 => n,
        _ => return,
    };
    let (seq, family) = match Request::decode(&buf[..n]) {
        Ok((
            seq,
            Request::Socket {
                family,
                sock_type,
                protocol,
            },
        )) => {
            let errno = socket_errno(family, sock_type, protocol);
            if let Some(e) = errno {
                let _ = unix.send(&[&Response::Err(e.0).encode(seq)], None).await;
                return;
            }
            (seq, family)
        }
        _ => {
            let _ = unix
                .send(&[&Response::Err(Errno::EPROTO.0).encode(0)], None)
                .await;
            return;
        }
    };
    // SO_PEERCRED of the connecting process: the budget is per uid, not per connection, so a
    // client can't exhaust the service by opening many sockets.
    let uid = unix.peer_uid().unwrap_or(u32::MAX);
    let Some(slot) = svc.claim(uid) else {
        tracing::warn!(uid, "sockd: socket limit reached");
        let _ = unix
            .send(&[&Response::Err(Errno::EMFILE.0).encode(seq)], None)
            .await;
        return;
    };
    let mut s = Session::new(svc, unix, uid, slot, SockOptions::new(), family);
    if s.respond(seq, Ok(Response::Ok(0)), None).await.is_err() {
        return;
    }
    s.run(buf).await;
}

fn socket_errno(family: u16, sock_type: i32, protocol: i32) -> Option<Errno> {
    if family != libc_af::INET && family != libc_af::INET6 {
        return Some(Errno::EAFNOSUPPORT);
    }
    if protocol != IPPROTO_QUIC {
        return Some(Errno::EPROTONOSUPPORT);
    }
    // SOCK_DGRAM (2) or SOCK_STREAM (1), flags already stripped by the library
    if sock_type != 1 && sock_type != 2 {
        return Some(Errno::EPROTOTYPE);
    }
    None
}

/// Address family numbers (Linux)
mod libc_af {
    pub(super) const INET: u16 = 2;
    pub(super) const INET6: u16 = 10;
}

impl Session {
    fn new(
        svc: Arc<Service>,
        unix: SeqPacket,
        uid: u32,
        slot: Slot,
        opts: SockOptions,
        family: u16,
    ) -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                events: opts.events(),
                ..Inner::default()
            }),
            wake: Notify::new(),
            space: Notify::new(),
            stop: Notify::new(),
            rcvbuf: svc.limits.rcvbuf,
            backlog_cap: svc.limits.max_backlog,
            tasks: Mutex::new(Vec::new()),
            watch: Mutex::new(None),
            watched: Mutex::new(BTreeSet::new()),
            tickets: Mutex::new(Vec::new()),
            pumps: std::sync::atomic::AtomicUsize::new(0),
            pumps_done: Notify::new(),
            ended: Mutex::new(HashMap::new()),
            reading: Mutex::new(BTreeSet::new()),
        });
        Self {
            unix,
            svc,
            uid,
            _slot: slot,
            opts,
            family,
            local: None,
            peer: None,
            endpoint: None,
            conn: None,
            shared,
            active: None,
            next_open: HashMap::new(),
            notified: false,
            hup_sent: false,
            acceptor: false,
            server_name: String::new(),
            server_sessions: rustls::server::ServerSessionMemoryCache::new(256),
            remembered: false,
        }
    }

    async fn run(mut self, mut buf: Vec<u8>) {
        enum Step {
            Msg(usize),
            Eof,
            Wake,
        }
        loop {
            let step = tokio::select! {
                r = self.unix.recv(&mut buf) => match r {
                    Ok(0) | Err(_) => Step::Eof,
                    Ok(n) => Step::Msg(n),
                },
                _ = self.shared.wake.notified() => Step::Wake,
            };
            match step {
                Step::Eof => break,
                Step::Msg(n) => {
                    if n > msg::MAX_MESSAGE {
                        let _ = self.send_raw(&Response::Err(Errno::EPROTO.0), 0).await;
                        break;
                    }
                    // A request means the library read (and discarded) any Notify before it.
                    self.notified = false;
                    let msg = buf[..n].to_vec();
                    match self.request(&msg).await {
                        Ok(true) => {}
                        Ok(false) | Err(_) => break,
                    }
                }
                Step::Wake => {
                    self.apply_shared();
                    if self.ring().await.is_err() {
                        break;
                    }
                }
            }
        }
        self.teardown();
    }

    /// Take over what the pumps learnt about the connection
    fn apply_shared(&mut self) {
        let (close, token) = {
            let mut i = self.shared.lock();
            (i.peer_close.take(), i.new_token.take())
        };
        if let Some(c) = close {
            self.opts.on_peer_close(c);
        }
        if let Some(t) = token {
            self.opts.on_new_token(&t);
        }
        let tickets = std::mem::take(
            &mut *self
                .shared
                .tickets
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if let Some(last) = tickets.last() {
            self.opts.on_session_ticket(last);
            let mut i = self.shared.lock();
            let mask = i.events;
            for t in tickets {
                i.queue.push_event(mask, &Event::NewSessionTicket(t));
            }
        }
    }

    /// Ring the doorbell if something became readable since the last one
    async fn ring(&mut self) -> std::io::Result<()> {
        if !self.notified && self.shared.readable() {
            self.notified = true;
            self.send_raw(&Response::Notify(msg::ready::IN), 0).await?;
        }
        let pollout = std::mem::take(&mut self.shared.lock().pollout);
        if pollout {
            self.send_raw(&Response::Notify(msg::ready::OUT), 0).await?;
        }
        let closed = self.shared.lock().closed;
        if closed && !self.hup_sent && self.opts.state() == SockState::Closed {
            self.hup_sent = true;
            self.send_raw(&Response::Notify(msg::ready::HUP | msg::ready::ERR), 0)
                .await?;
        }
        Ok(())
    }

    async fn send_raw(&self, r: &Response<'_>, seq: u32) -> std::io::Result<()> {
        let mut head = Vec::with_capacity(64);
        r.encode_head(seq, &mut head);
        self.unix.send(&[&head, r.payload()], None).await
    }

    /// Send a response (FLAG_NOTIFY_FOLLOWS + Notify when the socket stays readable)
    async fn respond(
        &mut self,
        seq: u32,
        r: Result<Response<'_>, Errno>,
        pass: Option<&OwnedFd>,
    ) -> std::io::Result<()> {
        let r = r.unwrap_or_else(|e| Response::Err(e.0));
        let mut head = Vec::with_capacity(64);
        r.encode_head(seq, &mut head);
        let readable = self.shared.readable();
        if readable {
            msg::Header::set_flags(&mut head, msg::FLAG_NOTIFY_FOLLOWS);
        }
        self.unix.send(&[&head, r.payload()], pass).await?;
        self.notified = readable;
        if readable {
            self.send_raw(&Response::Notify(msg::ready::IN), 0).await?;
        }
        Ok(())
    }

    /// Handle one request; Ok(false) ends the session
    async fn request(&mut self, m: &[u8]) -> std::io::Result<bool> {
        let flags = msg::Header::split(m).map_or(0, |(h, _, _)| h.flags);
        let (seq, req) = match Request::decode(m) {
            Ok(x) => x,
            Err(e) => {
                // A broken client: tell it and drop only this connection.
                tracing::debug!("sockd: bad request: {e}");
                self.send_raw(&Response::Err(Errno::EPROTO.0), 0).await?;
                return Ok(false);
            }
        };
        let mut out = Vec::new();
        let r = match req {
            Request::Socket { .. } => Err(Errno::EINVAL),
            Request::Bind(a) => self.bind(a),
            Request::Listen { backlog } => self.listen(backlog),
            Request::Accept { .. } => return self.accept(seq).await.map(|()| true),
            Request::Connect(a) => self.connect(a),
            Request::Handshake(args) => self.handshake(args).await,
            Request::SendMsg {
                flags: f,
                stream_info,
                handshake_level,
                payload,
            } => self.sendmsg(f, stream_info, handshake_level, payload, flags),
            Request::RecvMsg { flags: f, max_len } => self.recvmsg(f, max_len, &mut out),
            Request::SetSockOpt {
                level,
                optname,
                optval,
            } => self.setsockopt(level, optname, optval).await,
            Request::GetSockOpt {
                level,
                optname,
                optlen,
                input,
            } => self.getsockopt(level, optname, optlen, input, &mut out),
            Request::GetSockName => Ok(Response::Addr(RawAddr::from_socket_addr(
                &self.local.unwrap_or_else(|| self.unspecified()),
            ))),
            Request::GetPeerName => match self.peer_addr() {
                Some(p) => Ok(Response::Addr(RawAddr::from_socket_addr(&p))),
                None => Err(Errno::ENOTCONN),
            },
            Request::Shutdown { .. } => {
                tracing::debug!("sockd: shutdown requested");
                self.close_connection();
                Ok(Response::Ok(0))
            }
            Request::Close => {
                self.respond(seq, Ok(Response::Ok(0)), None).await?;
                return Ok(false);
            }
        };
        self.respond(seq, r, None).await?;
        Ok(true)
    }

    fn unspecified(&self) -> SocketAddr {
        if self.family == libc_af::INET6 {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        }
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.conn
            .as_ref()
            .and_then(Connection::remote_address)
            .or(self.peer)
    }

    fn make_endpoint(&mut self, addr: SocketAddr) -> Result<(), Errno> {
        let ep = Endpoint::new(addr, EndpointConfig::default(), None).map_err(io_errno)?;
        self.local = Some(ep.local_addr());
        self.endpoint = Some(ep);
        Ok(())
    }

    fn bind(&mut self, a: RawAddr) -> Result<Response<'static>, Errno> {
        if self.endpoint.is_some() {
            return Err(Errno::EINVAL);
        }
        let addr = a.to_socket_addr()?;
        self.make_endpoint(addr)?;
        Ok(Response::Ok(0))
    }

    fn listen(&mut self, backlog: i32) -> Result<Response<'static>, Errno> {
        if self.conn.is_some() || self.peer.is_some() {
            return Err(Errno::EINVAL);
        }
        if self.endpoint.is_none() {
            self.make_endpoint(self.unspecified())?;
        }
        let Some(ep) = self.endpoint.clone() else {
            return Err(Errno::EINVAL);
        };
        if backlog == 0 {
            ep.set_server_config(None);
            self.shared.abort_all();
            self.acceptor = false;
            self.opts.on_listen(0);
            return Ok(Response::Ok(0));
        }
        let mut server = server_config(
            alpn_list(self.opts.alpn()),
            &self.transport(),
            self.server_sessions.clone(),
            self.opts.config().validate_peer_address != 0,
        )?;
        // As in the kernel, accept() comes before the handshake: every connection waits with
        // no TLS session (its Initials only acknowledged) until the accepted socket's
        // application runs TLS itself or asks for ours (`handshake`). The certificate above
        // is never used. QUIC_SOCKOPT_EXTERNAL_TLS_LISTENER is therefore a no-op.
        server.external_tls = true;
        ep.set_server_config(Some(server));
        {
            let mut i = self.shared.lock();
            i.backlog = usize::try_from(backlog)
                .unwrap_or(1)
                .clamp(1, self.shared.backlog_cap);
        }
        if !self.acceptor {
            self.acceptor = true;
            let shared = self.shared.clone();
            self.shared.spawn(async move {
                while let Some(conn) = ep.accept().await {
                    let mut i = shared.lock();
                    if i.pending.len() >= i.backlog {
                        // Backlog full: refuse like a kernel listener that drops the Initial.
                        drop(i);
                        conn.close(
                            u64::from(consts::transport_error::CONNECTION_REFUSED),
                            b"backlog",
                        );
                        continue;
                    }
                    i.pending.push_back(conn);
                    drop(i);
                    shared.wake.notify_one();
                }
            });
        }
        self.opts.on_listen(backlog);
        Ok(Response::Ok(0))
    }

    async fn accept(&mut self, seq: u32) -> std::io::Result<()> {
        if self.opts.state() != SockState::Listening {
            return self.respond(seq, Err(Errno::EINVAL), None).await;
        }
        let Some(conn) = self.shared.lock().pending.pop_front() else {
            return self.respond(seq, Err(Errno::EAGAIN), None).await;
        };
        let Some(slot) = self.svc.claim(self.uid) else {
            conn.close(
                u64::from(consts::transport_error::CONNECTION_REFUSED),
                b"limit",
            );
            return self.respond(seq, Err(Errno::EMFILE), None).await;
        };
        let (ours, theirs) = match SeqPacket::pair() {
            Ok(p) => p,
            Err(e) => {
                return self.respond(seq, Err(io_errno(e)), None).await;
            }
        };
        let peer = conn.remote_address();
        let mut child = Self::new(
            self.svc.clone(),
            ours,
            self.uid,
            slot,
            self.opts.accept_child(),
            self.family,
        );
        child.local = self.local;
        child.peer = peer;
        child.endpoint = self.endpoint.clone();
        // The client's handshake bytes (its ClientHello at least) wait for the application's
        // recvmsg, as in the kernel; they stay in the core too, in case the application
        // chooses quic_server_handshake instead
        child
            .shared
            .spawn(pump_handshake(child.shared.clone(), conn.clone(), false));
        child.conn = Some(conn);
        child.server_sessions = self.server_sessions.clone();
        spawn_child(child);
        let addr = peer.map_or_else(
            || RawAddr::from_socket_addr(&self.unspecified()),
            |p| RawAddr::from_socket_addr(&p),
        );
        self.respond(seq, Ok(Response::Accepted(addr)), Some(&theirs))
            .await
    }

    fn connect(&mut self, a: RawAddr) -> Result<Response<'static>, Errno> {
        if self.peer.is_some() || self.conn.is_some() {
            return Err(Errno::EISCONN);
        }
        if self.opts.state() == SockState::Listening {
            return Err(Errno::EINVAL);
        }
        let addr = a.to_socket_addr()?;
        if self.endpoint.is_none() {
            // Auto-bind like the kernel: an ephemeral port of the peer's family.
            let any = match addr {
                SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            };
            self.make_endpoint(any)?;
        }
        self.peer = Some(addr);
        self.opts.on_connect();
        Ok(Response::Ok(0))
    }

    /// The transport settings the socket's options ask for
    fn transport(&self) -> TransportConfig {
        let tp = self.opts.local_transport_param();
        let mut t = TransportConfig::default();
        if tp.max_idle_timeout > 0 {
            t.idle_timeout = Some(Duration::from_micros(u64::from(tp.max_idle_timeout)));
        }
        t.datagram_receive_buffer_size =
            (tp.max_datagram_frame_size > 0).then_some(self.shared.rcvbuf);
        if tp.max_streams_bidi > 0 {
            t.max_concurrent_bidi_streams = u64::from(tp.max_streams_bidi);
        }
        if tp.max_streams_uni > 0 {
            t.max_concurrent_uni_streams = u64::from(tp.max_streams_uni);
        }
        if tp.max_data > 0 {
            t.receive_window = tp.max_data;
        }
        if tp.max_stream_data_bidi_remote > 0 {
            t.stream_receive_window = tp.max_stream_data_bidi_remote;
        }
        // The options hold the kernel's defaults, which the setters validated (reference §1.7)
        t.max_ack_delay = Duration::from_micros(u64::from(tp.max_ack_delay));
        t.ack_delay_exponent = tp.ack_delay_exponent;
        if tp.active_connection_id_limit >= 2 {
            t.active_connection_id_limit = u64::from(tp.active_connection_id_limit);
        }
        let cfg = self.opts.config();
        if cfg.initial_smoothed_rtt > 0 {
            t.initial_rtt = Duration::from_micros(u64::from(cfg.initial_smoothed_rtt));
        }
        t.keep_alive_interval = (cfg.keepalive_probe_interval > 0)
            .then(|| Duration::from_micros(u64::from(cfg.keepalive_probe_interval)));
        // QUIC_CONG_ALG_RENO (0) is the kernel's default
        t.congestion = if cfg.congestion_control_algo == consts::QUIC_CONG_ALG_CUBIC {
            quic_stack::cc::Algorithm::Cubic
        } else {
            quic_stack::cc::Algorithm::NewReno
        };
        t
    }

    async fn handshake(&mut self, args: HandshakeArgs<'_>) -> Result<Response<'static>, Errno> {
        if self.opts.state() != SockState::Establishing {
            return Err(Errno::EINVAL);
        }
        let conn = if args.server {
            let Some(conn) = self.conn.clone() else {
                return Err(Errno::EINVAL);
            };
            self.attach_server_tls(&conn, &args)?;
            conn
        } else {
            if args.pkey.is_some() {
                // PSK needs rustls external PSK support; not available.
                return Err(Errno::EOPNOTSUPP);
            }
            if self.conn.is_some() {
                // The application already started its own TLS (external TLS)
                return Err(Errno::EINVAL);
            }
            let (Some(ep), Some(peer)) = (&self.endpoint, self.peer) else {
                return Err(Errno::ENOTCONN);
            };
            let alpns = args
                .alpns
                .map_or_else(|| alpn_list(self.opts.alpn()), alpn_list);
            // libquic sets no verify callback for X.509 clients: the server certificate is not
            // validated (reference §2); do the same.
            let mut crypto = client_tls_base().ok_or(Errno::ENOMEM)?.clone();
            crypto.alpn_protocols = alpns;
            crypto.resumption = rustls::client::Resumption::store(Arc::new(self.ticket_store()));
            let mut cfg = ClientConfig::new(Arc::new(crypto));
            cfg.transport = Arc::new(self.transport());
            let name = args
                .hostname
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| !h.is_empty())
                .unwrap_or("localhost")
                .to_string();
            // QUIC_SOCKOPT_TOKEN set before connect: the Initial carries it (the endpoint
            // sends a stored token once, to the server of that name).
            if !self.opts.token().is_empty() {
                let t = self.opts.token().to_vec();
                ep.with_proto(|p| p.set_new_token(&name, t));
            }
            self.server_name = name.clone();
            let conn = ep.connect(cfg, peer, &name).map_err(|e| {
                tracing::debug!("sockd connect: {e}");
                Errno::EINVAL
            })?;
            self.conn = Some(conn.clone());
            conn
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.handshake()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!("sockd handshake: {e}");
                self.opts.on_closed();
                return Err(Errno::ECONNREFUSED);
            }
            Err(_) => {
                conn.close(0, b"");
                self.opts.on_closed();
                return Err(Errno::ETIMEDOUT);
            }
        }
        self.established(conn);
        Ok(Response::Ok(0))
    }

    /// Accepted socket: run the service's TLS for this connection with the application's
    /// certificate (or the service's own), the call's ALPN (or QUIC_SOCKOPT_ALPN) and the
    /// listener's session store; the connection has been waiting in external mode since the
    /// client's Initial (see `listen`)
    fn attach_server_tls(
        &mut self,
        conn: &Connection,
        args: &HandshakeArgs<'_>,
    ) -> Result<(), Errno> {
        let pem = match (args.cert, args.pkey) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            // A key file alone is a PSK file: rustls has no external PSK
            (None, Some(_)) => return Err(Errno::EOPNOTSUPP),
            (Some(_), None) => return Err(Errno::EINVAL),
        };
        let alpns = args
            .alpns
            .map_or_else(|| alpn_list(self.opts.alpn()), alpn_list);
        let crypto = server_tls(pem, alpns, self.server_sessions.clone())?;
        match conn.with_core(|c, now| c.attach_server_tls(now, Arc::new(crypto))) {
            Some(Ok(())) => {}
            // The application already runs TLS itself on this socket
            Some(Err(ExternalTlsError::Committed | ExternalTlsError::NotExternal)) => {
                return Err(Errno::EINVAL)
            }
            Some(Err(e)) => {
                tracing::debug!("sockd server handshake: {e}");
                self.opts.on_closed();
                return Err(Errno::ECONNREFUSED);
            }
            None => {
                self.opts.on_closed();
                return Err(Errno::ECONNREFUSED);
            }
        }
        // The ClientHello copies meant for the application's own TLS are void now
        let mut i = self.shared.lock();
        i.builtin_tls = true;
        i.queue.clear_handshake();
        Ok(())
    }

    /// The client's TLS session store: resumes from the ticket handle set with
    /// QUIC_SOCKOPT_SESSION_TICKET, and hands new tickets to the socket
    fn ticket_store(&self) -> SocketStore {
        let t = self.opts.session_ticket();
        let resume = (t.len() == HANDLE_LEN)
            .then(|| self.svc.tickets.take(self.uid, t))
            .flatten();
        tracing::debug!(resume = resume.is_some(), "sockd: client session store");
        let sh = self.shared.clone();
        SocketStore::new(self.svc.tickets.clone(), self.uid, resume, move |h| {
            sh.tickets.lock().unwrap_or_else(|e| e.into_inner()).push(h);
            sh.wake.notify_one();
        })
    }

    /// Tasks that move what the connection receives into the queue
    fn start_pumps(&mut self, conn: Connection) {
        let server = self.opts.role() == quic_stack::sockapi::options::Role::Server;
        let start = conn.with_core(|c, _| Watch::new(c, server));
        *self.shared.watch.lock().unwrap_or_else(|e| e.into_inner()) = start;
        let token_source = (!server)
            .then(|| {
                self.endpoint
                    .clone()
                    .map(|ep| (ep, self.server_name.clone()))
            })
            .flatten();
        self.shared
            .spawn(watch_state(self.shared.clone(), conn.clone(), token_source));
        let sh = self.shared.clone();
        let c = conn.clone();
        let guard = PumpGuard::new(&sh);
        self.shared.spawn(async move {
            let _guard = guard;
            while let Ok((send, recv)) = c.accept_bi().await {
                sh.watched
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(send.id().0);
                sh.lock().send.insert(send.id().0, send);
                sh.spawn(read_stream(PumpGuard::new(&sh), recv));
            }
        });
        let sh = self.shared.clone();
        let c = conn.clone();
        let guard = PumpGuard::new(&sh);
        self.shared.spawn(async move {
            let _guard = guard;
            while let Ok(recv) = c.accept_uni().await {
                sh.spawn(read_stream(PumpGuard::new(&sh), recv));
            }
        });
        let sh = self.shared.clone();
        let c = conn.clone();
        let guard = PumpGuard::new(&sh);
        self.shared.spawn(async move {
            let _guard = guard;
            while let Ok(d) = c.read_datagram().await {
                let mut i = sh.lock();
                // Datagrams are unreliable: over the receive budget they are dropped.
                if i.queue.queued_bytes() + d.len() <= sh.rcvbuf {
                    i.queue.push_datagram(d.to_vec());
                    drop(i);
                    sh.wake.notify_one();
                }
            }
        });
        let sh = self.shared.clone();
        self.shared.spawn(async move {
            let reason = conn.closed().await;
            tracing::debug!(%reason, "sockd: connection ended");
            let _ = tokio::time::timeout(PUMP_DRAIN_LIMIT, sh.pumps_finished()).await;
            let close = close_info(&reason);
            let mut i = sh.lock();
            i.closed = true;
            if !matches!(reason, ConnectionError::LocallyClosed) {
                let mask = i.events;
                i.queue.push_event(mask, &Event::ConnectionClose(close));
                i.peer_close = Some(close);
            }
            drop(i);
            sh.wake.notify_one();
            sh.space.notify_waiters();
        });
    }

    fn sendmsg(
        &mut self,
        flags: u32,
        si: Option<StreamInfo>,
        hs: Option<u8>,
        payload: &[u8],
        hdr_flags: u16,
    ) -> Result<Response<'static>, Errno> {
        match self.opts.state() {
            SockState::Closed | SockState::Listening => return Err(Errno::EPIPE),
            // The application runs TLS itself: handshake messages go out before ESTABLISHED
            SockState::Establishing if hs.is_some() => {}
            // 0-RTT (reference §1.9): with the server's saved parameters, data written before
            // the handshake is queued within their limits
            SockState::Establishing if self.remembered && !self.is_server() => {
                self.external_conn()?;
            }
            SockState::Establishing => return Err(Errno::ENOTCONN),
            SockState::Established => {}
        }
        let hs = hs.map(|l| quic_stack::sockapi::types::HandshakeInfo { crypto_level: l });
        let target = classify_send(flags, si, hs, payload.len())?;
        if let SendTarget::Handshake { level } = target {
            let conn = self.external_conn()?;
            let space = crypto_space(level)?;
            return match conn.with_core(|c, now| c.external_send_handshake(now, space, payload)) {
                Some(Ok(())) => Ok(Response::Ok(payload.len() as i64)),
                Some(Err(e)) => {
                    tracing::debug!("sockd external TLS send: {e}");
                    Err(Errno::EINVAL)
                }
                None => Err(Errno::EPIPE),
            };
        }
        let Some(conn) = self.conn.clone() else {
            return Err(Errno::ENOTCONN);
        };
        match target {
            SendTarget::Handshake { .. } => Err(Errno::EINVAL),
            SendTarget::Datagram => {
                let Some(max) = conn.max_datagram_size() else {
                    return Err(Errno::EINVAL);
                };
                if payload.len() > max {
                    return Err(Errno::EMSGSIZE);
                }
                match conn.send_datagram(Bytes::copy_from_slice(payload)) {
                    Ok(()) => Ok(Response::Ok(payload.len() as i64)),
                    Err(DatagramError::ConnectionLost(_)) => Err(Errno::EPIPE),
                    Err(_) => Err(Errno::EINVAL),
                }
            }
            SendTarget::Stream {
                choice,
                stream_flags,
                ..
            } => {
                let wait = hdr_flags & msg::FLAG_WILL_WAIT != 0;
                let new = stream_flags & consts::MSG_QUIC_STREAM_NEW != 0;
                let id = match (choice, self.active) {
                    (StreamChoice::Id(id), _) => self.stream_for(&conn, id, wait)?,
                    (_, Some(a)) if !new => a,
                    (StreamChoice::ActiveOrNextUni, _) => self.open(&conn, Dir::Uni, wait)?,
                    (_, _) => self.open(&conn, Dir::Bi, wait)?,
                };
                let fin = stream_flags & consts::MSG_QUIC_STREAM_FIN != 0;
                let n = self.write(id, payload, fin, target, wait)?;
                Ok(Response::Ok(n as i64))
            }
        }
    }

    /// The stream to send on for an explicit id: known, or opened (with every lower one of its
    /// kind, as RFC 9000 §3.2 implies) when it is ours and not yet open
    fn stream_for(&mut self, conn: &Connection, id: u64, wait: bool) -> Result<u64, Errno> {
        if self.shared.lock().send.contains_key(&id) {
            return Ok(id);
        }
        let ours_bit = u64::from(self.opts.role() == quic_stack::sockapi::options::Role::Server);
        if id & 1 != ours_bit {
            // A peer-initiated stream we have no sending half for (unknown or uni).
            return Err(Errno::EINVAL);
        }
        let dir = if id & 2 != 0 { Dir::Uni } else { Dir::Bi };
        if id < self.next_id(dir) {
            // Ours, opened before and now finished or reset.
            return Err(Errno::EINVAL);
        }
        loop {
            let got = self.open(conn, dir, wait)?;
            if got >= id {
                return if got == id {
                    Ok(id)
                } else {
                    Err(Errno::EINVAL)
                };
            }
        }
    }

    /// The lowest stream id of `dir` we have not opened yet (0 = none opened: any of ours is
    /// at or above it)
    fn next_id(&self, dir: Dir) -> u64 {
        self.next_open.get(&dir).copied().unwrap_or(0)
    }

    /// Open the next stream of `dir` now, or refuse with EAGAIN (over the peer's MAX_STREAMS);
    /// a waiting writer gets a task that opens it as soon as allowed and rings POLLOUT
    fn open(&mut self, conn: &Connection, dir: Dir, wait: bool) -> Result<u64, Errno> {
        let pre = self
            .shared
            .lock()
            .preopened
            .get_mut(&dir)
            .and_then(VecDeque::pop_front);
        let (send, recv) = match pre {
            Some(p) => p,
            None => match poll_now(open_stream(conn, dir)) {
                Some(Ok(p)) => p,
                Some(Err(_)) => return Err(Errno::EPIPE),
                // The kernel refuses instead of blocking while only 0-RTT may be sent
                None if self.opts.state() == SockState::Establishing => return Err(Errno::EINVAL),
                None => {
                    let first = {
                        let mut i = self.shared.lock();
                        let first = !i.open_waiting.contains(&dir);
                        if wait && first {
                            i.open_waiting.push(dir);
                        }
                        first
                    };
                    if wait && first {
                        let sh = self.shared.clone();
                        let c = conn.clone();
                        self.shared.spawn(async move {
                            if let Ok(p) = open_stream(&c, dir).await {
                                sh.lock().preopened.entry(dir).or_default().push_back(p);
                            }
                            sh.lock().open_waiting.retain(|d| *d != dir);
                            sh.ring_pollout();
                        });
                    }
                    return Err(Errno::EAGAIN);
                }
            },
        };
        let id = send.id().0;
        tracing::debug!(id, "sockd: stream opened");
        self.shared
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        let next = self.next_open.entry(dir).or_insert(0);
        *next = (*next).max(id + 4);
        self.shared.lock().send.insert(id, send);
        if let Some(r) = recv {
            self.shared
                .spawn(read_stream(PumpGuard::new(&self.shared), r));
        }
        Ok(id)
    }

    fn write(
        &mut self,
        id: u64,
        data: &[u8],
        fin: bool,
        target: SendTarget,
        wait: bool,
    ) -> Result<usize, Errno> {
        let mut i = self.shared.lock();
        let Some(stream) = i.send.get_mut(&id) else {
            return Err(Errno::EINVAL);
        };
        let mut done = 0;
        let mut blocked = false;
        while done < data.len() {
            match poll_now(stream.write(&data[done..])) {
                Some(Ok(n)) => done += n,
                // The core answers STOP_SENDING with RESET_STREAM and may then forget the
                // stream, so a write to a stream we never finished that is "closed" was stopped
                // by the peer; the driver doesn't expose the code then (reported as 0).
                Some(Err(e @ (StreamError::Stopped(_) | StreamError::ClosedStream))) => {
                    let code = match e {
                        StreamError::Stopped(c) => c,
                        _ => 0,
                    };
                    // The core's RESET_STREAM carries what we wrote as the final size
                    let finalsz = i.written.remove(&id).unwrap_or(0);
                    let ev = Event::StreamUpdate(StreamUpdate {
                        id: id as i64,
                        state: stream_state::SEND_RESET_SENT,
                        errcode: code as u32,
                        finalsz,
                    });
                    let mask = i.events;
                    i.queue.push_event(mask, &ev);
                    i.send.remove(&id);
                    drop(i);
                    self.shared.wake.notify_one();
                    // A finished or reset stream takes no more data (reference: EINVAL).
                    return Err(Errno::EINVAL);
                }
                Some(Err(StreamError::ConnectionLost(_))) => return Err(Errno::EPIPE),
                Some(Err(e)) => {
                    tracing::debug!(id, "sockd: write: {e}");
                    return Err(Errno::EINVAL);
                }
                None => {
                    blocked = true;
                    break;
                }
            }
        }
        if blocked && done == 0 {
            drop(i);
            if wait {
                // No writability signal in the driver: ask the writer to retry shortly.
                let sh = self.shared.clone();
                self.shared.spawn(async move {
                    tokio::time::sleep(SEND_RETRY).await;
                    sh.ring_pollout();
                });
            }
            return Err(target.flow_blocked_errno());
        }
        let finished = fin && done == data.len() && stream.finish().is_ok();
        let written = i.written.entry(id).or_insert(0);
        *written += done as u64;
        let finalsz = *written;
        if fin && done == data.len() {
            if finished {
                self.shared
                    .ended
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, (stream_state::SEND_RECVD, finalsz));
            }
            i.written.remove(&id);
            i.send.remove(&id);
            self.active = None;
        } else {
            self.active = Some(id);
        }
        Ok(done)
    }

    fn recvmsg<'a>(
        &mut self,
        flags: u32,
        max_len: u32,
        out: &'a mut Vec<u8>,
    ) -> Result<Response<'a>, Errno> {
        if self.opts.state() == SockState::Listening {
            return Err(Errno::EINVAL);
        }
        let peek = flags & consts::msg::PEEK != 0;
        out.resize((max_len as usize).min(msg::MAX_PAYLOAD), 0);
        let mut i = self.shared.lock();
        let Some(r) = i.queue.recv(out, peek) else {
            let closed = i.closed || self.opts.state() == SockState::Closed;
            return Err(if closed {
                Errno::ENOTCONN
            } else {
                Errno::EAGAIN
            });
        };
        drop(i);
        if !peek {
            self.shared.space.notify_waiters();
        }
        Ok(Response::Recv {
            msg_flags: r.msg_flags,
            stream_info: r.stream_info(),
            handshake_level: match r.kind {
                RecvKind::Handshake { level } => Some(level),
                _ => None,
            },
            payload: &out[..r.len],
        })
    }

    async fn setsockopt(
        &mut self,
        level: i32,
        optname: i32,
        optval: &[u8],
    ) -> Result<Response<'static>, Errno> {
        if level != SOL_QUIC {
            // SOL_SOCKET options live on the Unix fd in the library.
            return Ok(Response::Ok(0));
        }
        let action = match self.opts.set(optname, optval)? {
            SetOutcome::Stored => {
                self.shared.lock().events = self.opts.events();
                if optname == consts::QUIC_SOCKOPT_TRANSPORT_PARAM
                    && TransportParam::decode(optval).remote != 0
                {
                    self.remember_peer_params()?;
                }
                return Ok(Response::Ok(0));
            }
            SetOutcome::Do(a) => a,
        };
        match action {
            ConnAction::StreamReset(e) => {
                let mut i = self.shared.lock();
                let id = e.stream_id as u64;
                let Some(mut s) = i.send.remove(&id) else {
                    return Err(Errno::EINVAL);
                };
                let finalsz = i.written.remove(&id).unwrap_or(0);
                s.reset(u64::from(e.errcode)).map_err(|_| Errno::EINVAL)?;
                self.shared
                    .ended
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, (stream_state::SEND_RESET_RECVD, finalsz));
                if self.active == Some(id) {
                    self.active = None;
                }
                Ok(Response::Ok(0))
            }
            ConnAction::StopSending(e) => {
                // The receiving half belongs to its pump task: hand it the request and wait
                // (briefly) until STOP_SENDING is queued, so data the application sends after
                // this call goes out after the frame, as with the kernel.
                let id = e.stream_id as u64;
                self.shared.lock().stop.insert(id, u64::from(e.errcode));
                self.shared.stop.notify_waiters();
                for _ in 0..50 {
                    if !self.shared.lock().stop.contains_key(&id) {
                        return Ok(Response::Ok(0));
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                // No pump took it: the stream is unknown or already fully read.
                self.shared.lock().stop.remove(&id);
                Err(Errno::EINVAL)
            }
            ConnAction::KeyUpdate => {
                let conn = self.conn.clone().ok_or(Errno::EPIPE)?;
                let started = conn.with_core(|c, _| {
                    // The kernel refuses while the previous update is unfinished.
                    if c.key_update_pending() {
                        return false;
                    }
                    c.initiate_key_update();
                    true
                });
                match started {
                    Some(true) => Ok(Response::Ok(0)),
                    Some(false) => Err(Errno::EINVAL),
                    None => Err(Errno::EPIPE),
                }
            }
            ConnAction::ConnectionId(info) => {
                let conn = self.conn.clone().ok_or(Errno::EINVAL)?;
                let sh = self.shared.clone();
                let r = conn.with_core(|c, _| {
                    let r = c.retire_connection_ids(
                        info.dest != 0,
                        u64::from(info.prior_to),
                        u64::from(info.active),
                    );
                    if r.is_ok() {
                        if let Some(w) = sh.watch.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
                        {
                            w.cids_changed_locally(c);
                        }
                    }
                    r
                });
                match r {
                    Some(Ok(())) => Ok(Response::Ok(0)),
                    Some(Err(_)) => Err(Errno::EINVAL),
                    None => Err(Errno::EPIPE),
                }
            }
            ConnAction::Migrate(addr) => self.migrate(addr),
            ConnAction::SendNewToken => {
                let conn = self.conn.clone().ok_or(Errno::EINVAL)?;
                match conn.with_core(|c, _| c.request_new_token()) {
                    Some(true) => Ok(Response::Ok(0)),
                    // One still in flight (or the connection is gone)
                    _ => Err(Errno::EAGAIN),
                }
            }
            a @ (ConnAction::InstallSecret(_) | ConnAction::PeerTransportParamExt(_)) => {
                self.external_action(a)
            }
            ConnAction::SetPreferredAddress(addr) => {
                let conn = self.conn.clone().ok_or(Errno::EINVAL)?;
                conn.advertise_preferred_address(addr).map_err(io_errno)?;
                Ok(Response::Ok(0))
            }
        }
    }

    /// QUIC_SOCKOPT_CONNECTION_MIGRATION on an established client: move the socket's own
    /// endpoint to `addr`; the driver migrates the connection (fresh CID, PATH_CHALLENGE) and
    /// the watcher reports QUIC_EVENT_CONNECTION_MIGRATION once the path is validated
    fn migrate(&mut self, addr: SocketAddr) -> Result<Response<'static>, Errno> {
        // Deliberately refused on an established server (as in the kernel): RFC 9000 §9 lets
        // only clients migrate, a server offers a preferred address during the handshake
        // instead (`SetPreferredAddress`). Besides, its endpoint is shared with the listener
        // and the other accepted sockets: moving it would move them all.
        if self.is_server() {
            return Err(Errno::EINVAL);
        }
        let (Some(ep), Some(local)) = (self.endpoint.clone(), self.local) else {
            return Err(Errno::EINVAL);
        };
        if addr.is_ipv4() != local.is_ipv4() || addr == local {
            return Err(Errno::EINVAL);
        }
        ep.rebind(addr).map_err(io_errno)?;
        self.local = Some(ep.local_addr());
        Ok(Response::Ok(0))
    }

    fn getsockopt<'a>(
        &mut self,
        level: i32,
        optname: i32,
        optlen: u32,
        input: &[u8],
        out: &'a mut Vec<u8>,
    ) -> Result<Response<'a>, Errno> {
        if level != SOL_QUIC {
            return Err(Errno::ENOPROTOOPT);
        }
        let v = match self.opts.get(optname, input, optlen as usize)? {
            GetOutcome::Value(v) => v,
            GetOutcome::Ask(q) => {
                let answer = self.answer(&q)?;
                reply_for(&q, &answer, optlen as usize)?
            }
        };
        *out = v;
        Ok(Response::OptVal(out))
    }

    fn answer(&mut self, q: &ConnQuery) -> Result<Vec<u8>, Errno> {
        match q {
            ConnQuery::StreamOpen(info) => {
                let Some(conn) = self.conn.clone() else {
                    return Err(Errno::ENOTCONN);
                };
                let id = if info.stream_id < 0 {
                    let dir = if info.stream_flags & consts::MSG_QUIC_STREAM_UNI != 0 {
                        Dir::Uni
                    } else {
                        Dir::Bi
                    };
                    self.open(&conn, dir, false)?
                } else {
                    self.stream_for(&conn, info.stream_id as u64, false)?
                };
                Ok(StreamInfo {
                    stream_id: id as i64,
                    ..*info
                }
                .encode()
                .to_vec())
            }
            ConnQuery::ConnectionId { dest } => {
                let (active, lo) = self
                    .conn
                    .as_ref()
                    .and_then(|c| c.with_core(|c, _| c.connection_id_numbers(*dest)))
                    .unwrap_or((0, 0));
                Ok(ConnectionIdInfo {
                    dest: u8::from(*dest),
                    active: u32::try_from(active).unwrap_or(u32::MAX),
                    prior_to: u32::try_from(lo).unwrap_or(u32::MAX),
                }
                .encode()
                .to_vec())
            }
            ConnQuery::TransportParamExt => {
                let conn = self.external_conn()?;
                conn.with_core(|c, _| c.external_local_params().map(<[u8]>::to_vec))
                    .flatten()
                    .ok_or(Errno::EINVAL)
            }
            ConnQuery::SessionTicketKey => {
                // Accepted socket without a key of its own (listeners got EPIPE already)
                let peer = self.peer_addr().ok_or(Errno::ENOTCONN)?;
                self.svc
                    .ticket_keys
                    .key_for(peer.ip())
                    .map(|k| k.to_vec())
                    .ok_or(Errno::ENOMEM)
            }
        }
    }

    /// The connection of a socket whose application runs TLS itself (the kernel model: no
    /// handshake helper was called), started on first use once `connect` named the peer
    fn external_conn(&mut self) -> Result<Connection, Errno> {
        let server = self.opts.role() == quic_stack::sockapi::options::Role::Server;
        if let Some(conn) = &self.conn {
            return match conn.with_core(|c, _| c.is_external_tls()) {
                Some(true) => Ok(conn.clone()),
                // The service's TLS runs this connection (quic_*_handshake was called)
                Some(false) => Err(Errno::EINVAL),
                None => Err(Errno::EPIPE),
            };
        }
        if self.opts.state() != SockState::Establishing {
            return Err(Errno::EINVAL);
        }
        if server {
            return Err(Errno::EOPNOTSUPP);
        }
        let (Some(ep), Some(peer)) = (&self.endpoint, self.peer) else {
            return Err(Errno::ENOTCONN);
        };
        // The rustls config is required by the type but unused by an external session
        let crypto = client_tls_base().ok_or(Errno::ENOMEM)?.clone();
        let mut cfg = ClientConfig::new(Arc::new(crypto));
        cfg.transport = Arc::new(self.transport());
        cfg.external_tls = true;
        let conn = ep.connect(cfg, peer, "localhost").map_err(|e| {
            tracing::debug!("sockd external connect: {e}");
            Errno::EINVAL
        })?;
        self.conn = Some(conn.clone());
        self.shared
            .spawn(pump_handshake(self.shared.clone(), conn.clone(), true));
        if self.remembered {
            self.remember_peer_params()?;
        }
        Ok(conn)
    }

    fn is_server(&self) -> bool {
        self.opts.role() == quic_stack::sockapi::options::Role::Server
    }

    /// Hand the server's saved parameters (TRANSPORT_PARAM remote=1) to an external-TLS
    /// client connection; without a connection yet they wait for it (`external_conn`)
    fn remember_peer_params(&mut self) -> Result<(), Errno> {
        self.remembered = true;
        let Some(conn) = self.conn.clone() else {
            return Ok(());
        };
        let params = self.opts.remote_transport_param().to_core();
        match conn.with_core(|c, _| {
            if !c.is_external_tls() {
                return Err(Errno::EINVAL);
            }
            c.set_remembered_peer_params(&params).map_err(|e| {
                tracing::debug!("sockd: remembered parameters: {e}");
                Errno::EINVAL
            })
        }) {
            Some(r) => r,
            None => Err(Errno::EPIPE),
        }
    }

    /// The handshake is complete: the socket now reports the peer's transport parameters
    /// (what a client caches for its next 0-RTT) and runs the connection pumps
    fn established(&mut self, conn: Connection) {
        let peer = conn
            .with_core(|c, _| c.peer_params().map(TransportParam::from_core))
            .flatten();
        if let Some(tp) = peer {
            self.opts.on_peer_transport_param(tp);
        }
        self.opts.on_established();
        self.start_pumps(conn);
    }

    /// Act on a CRYPTO_SECRET or TRANSPORT_PARAM_EXT the options layer accepted
    fn external_action(&mut self, action: ConnAction) -> Result<Response<'static>, Errno> {
        let conn = self.external_conn()?;
        let result = match action {
            ConnAction::InstallSecret(s) => {
                let suite = match s.cipher_type {
                    consts::TLS_CIPHER_AES_GCM_128 => Suite::Aes128Gcm,
                    consts::TLS_CIPHER_AES_GCM_256 => Suite::Aes256Gcm,
                    consts::TLS_CIPHER_CHACHA20_POLY1305 => Suite::ChaCha20Poly1305,
                    // AES-128-CCM has no QUIC packet protection here
                    _ => return Err(Errno::EOPNOTSUPP),
                };
                let len = s.secret_len().ok_or(Errno::EINVAL)?;
                let secret = s.secret.get(..len).ok_or(Errno::EINVAL)?;
                let dir = if s.send != 0 {
                    Direction::Send
                } else {
                    Direction::Receive
                };
                if s.level == consts::QUIC_CRYPTO_EARLY {
                    // 0-RTT: the client's send secret, the server's receive secret (the core
                    // refuses the other directions)
                    conn.with_core(|c, now| {
                        c.external_install_early_secret(now, dir, suite, secret)
                    })
                } else {
                    let space = crypto_space(s.level)?;
                    conn.with_core(|c, now| {
                        c.external_install_secret(now, space, dir, suite, secret)
                    })
                }
            }
            ConnAction::PeerTransportParamExt(p) => {
                conn.with_core(|c, now| c.external_set_peer_params(now, &p))
            }
            _ => return Err(Errno::EINVAL),
        };
        match result {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::debug!("sockd external TLS: {e}");
                return Err(Errno::EINVAL);
            }
            None => return Err(Errno::EPIPE),
        }
        // APP tx and rx both present: the core completed the handshake with them
        let done = conn.with_core(|c, _| !c.is_handshaking()).unwrap_or(false);
        if done && self.opts.state() == SockState::Establishing {
            self.shared.lock().external_established = true;
            self.established(conn);
        }
        Ok(Response::Ok(0))
    }

    /// CONNECTION_CLOSE with the socket's configured code and phrase
    fn close_connection(&mut self) {
        if let Some(c) = &self.conn {
            let lc = self.opts.local_close();
            let end = lc
                .phrase
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(lc.phrase.len());
            let (c, code, phrase) = (c.clone(), u64::from(lc.errcode), lc.phrase[..end].to_vec());
            // What the application wrote before close() leaves first, as in the kernel, whose
            // sendmsg transmits before it returns: here the writes reach the driver
            // asynchronously and the CONNECTION_CLOSE would overtake them. Not a linger: data
            // held back by flow control or congestion gets `CLOSE_FLUSH_LIMIT`, not delivery.
            // A plain task (not the socket's), so the socket's teardown does not cut it short.
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + CLOSE_FLUSH_LIMIT;
                while c.with_core(|core, _| core.has_unsent_stream_data()) == Some(true)
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                c.close(code, &phrase);
            });
        }
        self.opts.on_closed();
        self.shared.lock().closed = true;
    }

    fn teardown(&mut self) {
        if self.opts.state() != SockState::Closed {
            self.close_connection();
        }
        self.shared.abort_all();
        // Pending, never-accepted connections of a listener die with it.
        let pending: Vec<Connection> = self.shared.lock().pending.drain(..).collect();
        for c in pending {
            c.close(u64::from(consts::transport_error::CONNECTION_REFUSED), b"");
        }
        self.shared.lock().send.clear();
        self.shared.stop.notify_waiters();
    }
}

/// Move the handshake bytes the peer sent into the socket's queue, each with its level, until
/// the connection ends. On a client (`client`) the post-handshake messages (APP level) are
/// the server's NewSessionTickets: as in the kernel they become QUIC_EVENT_NEW_SESSION_TICKET
/// and the QUIC_SOCKOPT_SESSION_TICKET value rather than recvmsg handshake messages, since
/// the application's handshake loop has ended by then
async fn pump_handshake(sh: Arc<Shared>, conn: Connection, client: bool) {
    let mut tickets = quic_stack::sockapi::tickets::TicketSplitter::default();
    loop {
        let got = conn
            .wait_core(|c| {
                let mut out = Vec::new();
                while let Some(m) = c.external_recv_handshake() {
                    out.push(m);
                }
                (!out.is_empty()).then_some(out)
            })
            .await;
        let messages = match got {
            Ok(m) => m,
            Err(reason) => {
                // Ended during the handshake: no connection pumps run yet to report it
                let mut i = sh.lock();
                if !i.external_established && !i.builtin_tls {
                    i.closed = true;
                    if !matches!(reason, ConnectionError::LocallyClosed) {
                        let close = close_info(&reason);
                        let mask = i.events;
                        i.queue.push_event(mask, &Event::ConnectionClose(close));
                        i.peer_close = Some(close);
                    }
                }
                drop(i);
                sh.wake.notify_one();
                return;
            }
        };
        let mut i = sh.lock();
        if i.builtin_tls {
            // quic_server_handshake took over; these bytes are the service TLS's now
            return;
        }
        let mut got_ticket = false;
        for (space, data) in messages {
            if client && space == SpaceId::Data {
                for t in tickets.push(&data) {
                    got_ticket = true;
                    sh.tickets.lock().unwrap_or_else(|e| e.into_inner()).push(t);
                }
                continue;
            }
            let level = match space {
                SpaceId::Initial => consts::QUIC_CRYPTO_INITIAL,
                SpaceId::Handshake => consts::QUIC_CRYPTO_HANDSHAKE,
                SpaceId::Data => consts::QUIC_CRYPTO_APP,
            };
            i.queue.push_handshake(level, data);
        }
        drop(i);
        if got_ticket || tickets.pending_len() > 0 {
            tracing::debug!(got_ticket, "sockd: post-handshake CRYPTO from the server");
        }
        sh.wake.notify_one();
    }
}

/// The packet number space of a QUIC_CRYPTO_* level the application names (EARLY is 0-RTT,
/// which external TLS does not offer)
fn crypto_space(level: u8) -> Result<SpaceId, Errno> {
    match level {
        consts::QUIC_CRYPTO_INITIAL => Ok(SpaceId::Initial),
        consts::QUIC_CRYPTO_HANDSHAKE => Ok(SpaceId::Handshake),
        consts::QUIC_CRYPTO_APP => Ok(SpaceId::Data),
        _ => Err(Errno::EINVAL),
    }
}

/// Run an accepted socket's session; a plain fn so the session future's type does not
/// contain itself (accept → spawn → run → accept)
fn spawn_child(child: Session) {
    tokio::spawn(child.run(vec![0u8; msg::MAX_MESSAGE + 1]));
}

/// Turn connection state changes into events (see `watch`) until the connection ends;
/// `token_source` (client) is where NEW_TOKEN tokens land: the endpoint's store, by server name
async fn watch_state(sh: Arc<Shared>, conn: Connection, token_source: Option<(Endpoint, String)>) {
    // connect() took any stored token out, so whatever is there later came from this server
    // (the first NEW_TOKEN may well precede the watcher).
    let mut token: Option<Vec<u8>> = None;
    loop {
        let sh2 = sh.clone();
        let changed = conn.wait_core(move |c| {
            let mut streams = sh2.watched.lock().unwrap_or_else(|e| e.into_inner());
            let mut w = sh2.watch.lock().unwrap_or_else(|e| e.into_inner());
            let w = w.as_mut()?;
            // Streams whose sending half is gone need no more watching; the core frees it once
            // our FIN or RESET_STREAM is acknowledged: STREAM_UPDATE RECVD / RESET_RECVD.
            let mut ended = sh2.ended.lock().unwrap_or_else(|e| e.into_inner());
            let mut ev = Vec::new();
            streams.retain(|&id| {
                let live = c.stream_send_max_data(quic_stack::StreamId(id)).is_some();
                if let (false, Some((state, finalsz))) = (live, ended.remove(&id)) {
                    ev.push(Event::StreamUpdate(StreamUpdate {
                        id: id as i64,
                        state,
                        errcode: 0,
                        finalsz,
                    }));
                }
                live
            });
            ev.extend(w.diff(c, &streams));
            let reading = sh2.reading.lock().unwrap_or_else(|e| e.into_inner());
            ev.extend(w.size_known(c, &reading));
            (!ev.is_empty()).then_some(ev)
        });
        let mut events = tokio::select! {
            r = changed => match r {
                Ok(ev) => ev,
                Err(_) => return,
            },
            _ = tokio::time::sleep(WATCH_TICK) => Vec::new(),
        };
        if let Some((ep, name)) = &token_source {
            let now = ep.with_proto(|p| p.new_token(name).map(<[u8]>::to_vec));
            if now.is_some() && now != token {
                token.clone_from(&now);
                if let Some(t) = now {
                    sh.lock().new_token = Some(t.clone());
                    events.push(Event::NewToken(t));
                }
            }
        }
        if events.is_empty() {
            continue;
        }
        let mut i = sh.lock();
        let mask = i.events;
        for e in &events {
            if let Event::StreamUpdate(u) = e {
                // Too late if the pump delivered the FIN meanwhile (it would follow RECVD)
                let reading = sh.reading.lock().unwrap_or_else(|e| e.into_inner());
                if u.state == stream_state::RECV_SIZE_KNOWN && !reading.contains(&(u.id as u64)) {
                    continue;
                }
            }
            tracing::debug!(?e, "sockd: event");
            i.queue.push_event(mask, e);
        }
        drop(i);
        sh.wake.notify_one();
    }
}

/// Read one stream into the queue until FIN, reset, STOP_SENDING or the connection's end
async fn read_stream(guard: PumpGuard, rs: RecvStream) {
    let sh = guard.0.clone();
    let id = rs.id().0;
    sh.reading
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id);
    read_stream_until_end(&sh, rs).await;
    sh.reading
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
}

async fn read_stream_until_end(sh: &Arc<Shared>, mut rs: RecvStream) {
    let id = rs.id().0;
    let mut buf = vec![0u8; READ_CHUNK];
    // Bytes delivered so far (the final size once the FIN is in)
    let mut total: u64 = 0;
    loop {
        sh.wait_space().await;
        let mut stop = pin!(sh.stop.notified());
        stop.as_mut().enable();
        if let Some(code) = sh.lock().stop.remove(&id) {
            let _ = rs.stop(code);
            return;
        }
        let r = tokio::select! {
            r = rs.read(&mut buf) => r,
            _ = stop => continue,
        };
        let (data, fin) = match r {
            Ok(Some(mut n)) => {
                // Take what else is already there, and the FIN, which the driver reports on
                // the read after the last bytes: data and FIN then reach the application in
                // one recvmsg whenever they arrived together.
                let mut fin = false;
                while n < buf.len() {
                    match poll_now(rs.read(&mut buf[n..])) {
                        Some(Ok(Some(m))) => n += m,
                        Some(Ok(None)) => {
                            fin = true;
                            break;
                        }
                        // Errors surface on the next read; pending: deliver what we have.
                        _ => break,
                    }
                }
                (buf[..n].to_vec(), fin)
            }
            Ok(None) => (Vec::new(), true),
            Err(StreamError::Reset { code, final_size }) => {
                let ev = Event::StreamUpdate(StreamUpdate {
                    id: id as i64,
                    state: stream_state::RECV_RESET_RECVD,
                    errcode: code as u32,
                    finalsz: final_size,
                });
                let mut i = sh.lock();
                let mask = i.events;
                i.queue.push_event(mask, &ev);
                drop(i);
                sh.wake.notify_one();
                return;
            }
            Err(_) => return,
        };
        tracing::trace!(id, len = data.len(), fin, "sockd: stream data");
        let first = total == 0;
        total += data.len() as u64;
        let mut i = sh.lock();
        let mask = i.events;
        // The kernel's receive-side states: RECV with the first data, RECVD once all is in.
        let update = |state, finalsz| {
            Event::StreamUpdate(StreamUpdate {
                id: id as i64,
                state,
                errcode: 0,
                finalsz,
            })
        };
        if first {
            i.queue
                .push_event(mask, &update(stream_state::RECV_RECV, 0));
        }
        if fin {
            // Under `inner`: a watcher holding SIZE_KNOWN sees this and drops it
            sh.reading
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            i.queue
                .push_event(mask, &update(stream_state::RECV_RECVD, total));
        }
        i.queue.push_stream(id as i64, data, fin);
        drop(i);
        sh.wake.notify_one();
        if fin {
            return;
        }
    }
}

async fn open_stream(
    conn: &Connection,
    dir: Dir,
) -> Result<(SendStream, Option<RecvStream>), ConnectionError> {
    match dir {
        Dir::Bi => conn.open_bi().await.map(|(s, r)| (s, Some(r))),
        Dir::Uni => conn.open_uni().await.map(|s| (s, None)),
    }
}

/// Poll a future once: its value if ready now, None if it would wait
fn poll_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

fn close_info(e: &ConnectionError) -> ConnectionClose {
    let (code, frame, reason): (u64, u64, &[u8]) = match e {
        ConnectionError::ApplicationClosed { error_code, reason } => (*error_code, 0, reason),
        ConnectionError::ConnectionClosed {
            error_code,
            frame_type,
            reason,
        } => (*error_code, *frame_type, reason.as_bytes()),
        _ => (0, 0, &[]),
    };
    let mut c = ConnectionClose {
        errcode: u32::try_from(code).unwrap_or(u32::MAX),
        frame: u8::try_from(frame).unwrap_or(0),
        ..ConnectionClose::default()
    };
    // Keep a terminating NUL, as the kernel's phrase buffer does.
    let n = reason.len().min(c.phrase.len() - 1);
    c.phrase[..n].copy_from_slice(&reason[..n]);
    c
}

fn alpn_list(s: &[u8]) -> Vec<Vec<u8>> {
    s.split(|&b| b == b',')
        .map(|a| a.trim_ascii().to_vec())
        .filter(|a| !a.is_empty())
        .collect()
}

/// A listener's endpoint config: the TLS part is never used (connections start in external
/// mode, see `Session::listen`), but the type wants one
fn server_config(
    alpn: Vec<Vec<u8>>,
    transport: &TransportConfig,
    sessions: Arc<dyn rustls::server::StoresServerSessions>,
    retry: bool,
) -> Result<ServerConfig, Errno> {
    let crypto = server_tls(None, alpn, sessions)?;
    let mut cfg = ServerConfig::new(Arc::new(crypto));
    // QUIC_CONFIG's validate_peer_address: Retry first (a NEW_TOKEN token skips it)
    cfg.retry = retry;
    // Accepted connections take 0-RTT when their TLS does, as in the kernel: the
    // application's own TLS decides by installing the EARLY receive secret, the service's
    // (quic_server_handshake) always offers it in its tickets
    cfg.transport = Arc::new(TransportConfig {
        zero_rtt: true,
        ..transport.clone()
    });
    Ok(cfg)
}

/// Server TLS with the given PEM cert/key, or the service's own self-signed certificate
fn server_tls(
    pem: Option<(&[u8], &[u8])>,
    alpn: Vec<Vec<u8>>,
    sessions: Arc<dyn rustls::server::StoresServerSessions>,
) -> Result<rustls::ServerConfig, Errno> {
    let (chain, key) = match pem {
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
                .filter_map(Result::ok)
                .collect();
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| Errno::EINVAL)?;
            if chain.is_empty() {
                return Err(Errno::EINVAL);
            }
            (chain, key)
        }
        None => {
            let (c, k) = self_signed().ok_or(Errno::ENOMEM)?;
            (vec![c.clone()], k.clone_key())
        }
    };
    // Early data on: the tickets it issues allow 0-RTT, which the connection accepts when its
    // transport config does (see `server_config`)
    let mut crypto =
        quic_stack::tls::server_config(chain, key, alpn, None, true).map_err(|_| Errno::EINVAL)?;
    crypto.session_storage = sessions;
    Ok(crypto)
}

/// The TLS client config every client socket starts from: rustls resumes a session only with
/// the very verifier and client-certificate resolver (same allocation) that made it, so all
/// sockets share them
fn client_tls_base() -> Option<&'static rustls::ClientConfig> {
    static BASE: OnceLock<Option<rustls::ClientConfig>> = OnceLock::new();
    BASE.get_or_init(|| quic_stack::tls::danger_insecure_client_config(Vec::new()).ok())
        .as_ref()
}

/// The service's certificate for listeners whose application has not given one yet
fn self_signed() -> Option<&'static (CertificateDer<'static>, PrivateKeyDer<'static>)> {
    static CERT: OnceLock<Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>> =
        OnceLock::new();
    CERT.get_or_init(|| {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).ok()?;
        let key = PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
        Some((ck.cert.der().clone(), key))
    })
    .as_ref()
}

fn io_errno(e: std::io::Error) -> Errno {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::AddrInUse => Errno::EADDRINUSE,
        K::AddrNotAvailable => Errno::EADDRNOTAVAIL,
        K::PermissionDenied => Errno::EPERM,
        _ => e.raw_os_error().map_or(Errno::EINVAL, Errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_arguments_like_the_kernel() {
        assert_eq!(socket_errno(2, 2, IPPROTO_QUIC), None);
        assert_eq!(socket_errno(10, 1, IPPROTO_QUIC), None);
        assert_eq!(socket_errno(1, 2, IPPROTO_QUIC), Some(Errno::EAFNOSUPPORT));
        assert_eq!(socket_errno(2, 2, 17), Some(Errno::EPROTONOSUPPORT));
        assert_eq!(socket_errno(2, 3, IPPROTO_QUIC), Some(Errno::EPROTOTYPE));
    }

    #[test]
    fn alpn_lists_split_on_commas() {
        assert_eq!(alpn_list(b"h3, sample,,x"), [&b"h3"[..], b"sample", b"x"]);
        assert!(alpn_list(b"").is_empty());
    }

    #[test]
    fn close_reasons_fit_the_kernel_struct() {
        let long = Bytes::from(vec![b'a'; 200]);
        let c = close_info(&ConnectionError::ApplicationClosed {
            error_code: 42,
            reason: long,
        });
        assert_eq!(c.errcode, 42);
        assert_eq!(c.phrase[62], b'a');
        assert_eq!(c.phrase[63], 0, "NUL-terminated like the kernel's buffer");
        let c = close_info(&ConnectionError::ConnectionClosed {
            error_code: 1 << 40,
            frame_type: 0x1c,
            reason: "x".into(),
        });
        assert_eq!((c.errcode, c.frame, c.phrase[0]), (u32::MAX, 0x1c, b'x'));
        assert_eq!(close_info(&ConnectionError::TimedOut).errcode, 0);
    }

    #[test]
    fn poll_now_reports_pending() {
        assert_eq!(poll_now(async { 5 }), Some(5));
        assert_eq!(poll_now(std::future::pending::<()>()), None);
    }

    #[test]
    fn own_certificate_is_made_once() {
        let a = self_signed().map(|(c, _)| c.clone());
        assert!(a.is_some());
        assert_eq!(a, self_signed().map(|(c, _)| c.clone()));
    }
}
