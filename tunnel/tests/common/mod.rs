//! A client of the `sockd` service protocol, as the C library drives it, shared by the Rust
//! tests that speak the SOL_QUIC API without the library (each test binary uses a subset)
#![allow(dead_code)]

pub(crate) mod app_tls;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use quic_stack::sockapi::consts::*;
use quic_stack::sockapi::events::Event;
use quic_stack::sockapi::msg::{HandshakeArgs, RawAddr, Request, Response, MAX_MESSAGE};
use quic_stack::sockapi::types::StreamInfo;
use tunnel::sockd::SeqPacket;

/// One QUIC socket of the service, as the library would drive it
pub(crate) struct Sock {
    unix: SeqPacket,
    /// The same Unix socket, for accept()'s SCM_RIGHTS (SeqPacket reads bytes only)
    raw: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

/// What a response said, owned
#[derive(Debug)]
pub(crate) enum Answer {
    Ok(i64),
    Err(i32),
    Recv {
        msg_flags: u32,
        stream: Option<StreamInfo>,
        level: Option<u8>,
        data: Vec<u8>,
    },
    OptVal(Vec<u8>),
    Addr(SocketAddr),
}

/// One recvmsg's outcome, the errors a test waits through or for as values
#[derive(Debug)]
pub(crate) enum Recvd {
    Msg {
        msg_flags: u32,
        stream: Option<StreamInfo>,
        level: Option<u8>,
        data: Vec<u8>,
    },
    /// EAGAIN: nothing queued yet
    Again,
    /// ENOTCONN: the connection is gone and its queue drained
    NotConnected,
}

/// A quic-stack server endpoint on 127.0.0.1 (built-in TLS `tls`, transport `transport`)
/// and its address
pub(crate) fn loopback_server(
    tls: rustls::ServerConfig,
    transport: quic_stack::config::TransportConfig,
) -> (quic_stack::driver::Endpoint, SocketAddr) {
    let mut cfg = quic_stack::config::ServerConfig::new(std::sync::Arc::new(tls));
    cfg.transport = std::sync::Arc::new(transport);
    let ep = quic_stack::driver::Endpoint::new(
        "127.0.0.1:0".parse().expect("addr"),
        quic_stack::config::EndpointConfig::default(),
        Some(cfg),
    )
    .expect("server endpoint");
    let addr = ep.local_addr();
    (ep, addr)
}

/// In the background, echoes every bidirectional stream `conn`'s peer opens (data back, then
/// FIN) until the connection ends
pub(crate) fn echo_bidi_streams(conn: quic_stack::driver::Connection) {
    tokio::spawn(async move {
        while let Ok((mut s, mut r)) = conn.accept_bi().await {
            tokio::spawn(async move {
                if let Ok(data) = r.read_to_end(1 << 20).await {
                    let _ = s.write_all(&data).await;
                    let _ = s.finish();
                }
            });
        }
    });
}

/// A client-only quic-stack endpoint on 127.0.0.1
pub(crate) fn loopback_client() -> quic_stack::driver::Endpoint {
    quic_stack::driver::Endpoint::new(
        "127.0.0.1:0".parse().expect("addr"),
        quic_stack::config::EndpointConfig::default(),
        None,
    )
    .expect("client endpoint")
}

/// A `sockd` service on a fresh abstract name (`prefix-PID`), served until the handle is aborted
pub(crate) fn start_service(prefix: &str) -> (String, tokio::task::JoinHandle<()>) {
    let name = format!("{prefix}-{}", std::process::id());
    let listener = tunnel::sockd::bind(&name).expect("bind service");
    let service = tokio::spawn(tunnel::sockd::serve(
        listener,
        tunnel::sockd::Limits::default(),
    ));
    (name, service)
}

impl Sock {
    /// A listening socket with ALPN "sample" on 127.0.0.1, and its address
    pub(crate) async fn listener(service: &str, backlog: i32) -> (Self, SocketAddr) {
        let mut l = Self::open(service).await;
        let r = l.set(QUIC_SOCKOPT_ALPN, b"sample").await;
        assert!(matches!(r, Answer::Ok(0)), "alpn: {r:?}");
        let addr = l.bind_listen(backlog).await;
        (l, addr)
    }

    /// Binds to 127.0.0.1 (the service picks the port) and listens; the bound address
    pub(crate) async fn bind_listen(&mut self, backlog: i32) -> SocketAddr {
        let bind = RawAddr::from_socket_addr(&"127.0.0.1:0".parse().expect("addr"));
        let r = self.call(&Request::Bind(bind)).await;
        assert!(matches!(r, Answer::Ok(0)), "bind: {r:?}");
        let r = self.call(&Request::Listen { backlog }).await;
        assert!(matches!(r, Answer::Ok(0)), "listen: {r:?}");
        match self.call(&Request::GetSockName).await {
            Answer::Addr(a) => a,
            other => panic!("getsockname: {other:?}"),
        }
    }

    /// connect() to `to`, then the built-in client handshake (SNI "localhost", ALPN
    /// "sample"); both must succeed
    pub(crate) async fn connect_and_handshake(&mut self, to: SocketAddr) {
        self.connect(to).await;
        let r = self.client_handshake().await;
        assert!(matches!(r, Answer::Ok(0)), "handshake: {r:?}");
    }

    /// connect() to `to`, which must succeed
    pub(crate) async fn connect(&mut self, to: SocketAddr) {
        let r = self
            .call(&Request::Connect(RawAddr::from_socket_addr(&to)))
            .await;
        assert!(matches!(r, Answer::Ok(0)), "connect: {r:?}");
    }

    /// The built-in client handshake (SNI "localhost", ALPN "sample"), its answer
    pub(crate) async fn client_handshake(&mut self) -> Answer {
        self.call(&Request::Handshake(HandshakeArgs {
            server: false,
            hostname: Some(b"localhost"),
            alpns: Some(b"sample"),
            pkey: None,
            cert: None,
        }))
        .await
    }

    pub(crate) async fn open(service: &str) -> Self {
        use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
        let fd: OwnedFd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("unix socket");
        let addr = UnixAddr::new_abstract(service.as_bytes()).expect("abstract name");
        connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).expect("connect to sockd");
        let mut s = Self::from_fd(fd);
        let r = s
            .call(&Request::Socket {
                family: 2,
                sock_type: 2,
                protocol: IPPROTO_QUIC,
            })
            .await;
        assert!(matches!(r, Answer::Ok(0)), "socket: {r:?}");
        s
    }

    /// A socket handed over by accept()
    pub(crate) fn from_fd(fd: OwnedFd) -> Self {
        Self {
            raw: fd.try_clone().expect("dup"),
            unix: SeqPacket::new(fd).expect("seqpacket"),
            seq: 0,
            buf: vec![0; MAX_MESSAGE + 1],
        }
    }

    /// accept() on a listener: waits (bounded) for a connection and takes the new socket's fd
    /// from SCM_RIGHTS, as the library does
    pub(crate) async fn accept(&mut self) -> Self {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::{AsRawFd, FromRawFd};
        for _ in 0..500 {
            self.seq += 1;
            let seq = self.seq;
            self.unix
                .send(&[&Request::Accept { flags: 0 }.encode(seq)], None)
                .await
                .expect("send accept");
            loop {
                let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
                let (n, fd) = {
                    let mut iov = [std::io::IoSliceMut::new(&mut self.buf)];
                    match recvmsg::<()>(
                        self.raw.as_raw_fd(),
                        &mut iov,
                        Some(&mut cmsg),
                        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
                    ) {
                        Ok(m) => {
                            let fd = m.cmsgs().expect("cmsgs").find_map(|c| match c {
                                ControlMessageOwned::ScmRights(f) => f.first().copied(),
                                _ => None,
                            });
                            (m.bytes, fd)
                        }
                        Err(nix::errno::Errno::EAGAIN) => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            continue;
                        }
                        Err(e) => panic!("recvmsg on the listener: {e}"),
                    }
                };
                let (rseq, r) = Response::decode(&self.buf[..n]).expect("decodable response");
                match r {
                    Response::Notify(_) => continue,
                    _ if rseq != seq => continue,
                    Response::Accepted(_) => {
                        let fd = fd.expect("accepted socket passed with SCM_RIGHTS");
                        // SAFETY: the fd just arrived with SCM_RIGHTS and nothing else owns it
                        return Self::from_fd(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                    Response::Err(e) if e == libc_eagain() => break,
                    other => panic!("accept: {other:?}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no connection to accept within 5 s");
    }

    /// Send a request; its response (Notify doorbells on the way are skipped)
    pub(crate) async fn call(&mut self, req: &Request<'_>) -> Answer {
        self.seq += 1;
        let seq = self.seq;
        self.unix
            .send(&[&req.encode(seq)], None)
            .await
            .expect("send request");
        loop {
            let n = self.unix.recv(&mut self.buf).await.expect("recv response");
            let (rseq, r) = Response::decode(&self.buf[..n]).expect("decodable response");
            match r {
                Response::Notify(_) => continue,
                _ if rseq != seq => continue,
                Response::Ok(v) => return Answer::Ok(v),
                Response::Err(e) => return Answer::Err(e),
                Response::Recv {
                    msg_flags,
                    stream_info,
                    handshake_level,
                    payload,
                } => {
                    return Answer::Recv {
                        msg_flags,
                        stream: stream_info,
                        level: handshake_level,
                        data: payload.to_vec(),
                    }
                }
                Response::OptVal(v) => return Answer::OptVal(v.to_vec()),
                Response::Addr(a) => return Answer::Addr(a.to_socket_addr().expect("address")),
                other => panic!("unexpected response {other:?}"),
            }
        }
    }

    pub(crate) async fn set(&mut self, optname: i32, optval: &[u8]) -> Answer {
        self.call(&Request::SetSockOpt {
            level: SOL_QUIC,
            optname,
            optval,
        })
        .await
    }

    pub(crate) async fn get(&mut self, optname: i32, input: &[u8], optlen: u32) -> Answer {
        self.call(&Request::GetSockOpt {
            level: SOL_QUIC,
            optname,
            optlen,
            input,
        })
        .await
    }

    /// One recvmsg, waiting up to a few seconds: (msg_flags, stream, handshake level, data)
    pub(crate) async fn recv_any(&mut self) -> (u32, Option<StreamInfo>, Option<u8>, Vec<u8>) {
        for _ in 0..500 {
            match self.recvmsg_once(65536).await {
                Recvd::Msg {
                    msg_flags,
                    stream,
                    level,
                    data,
                } => return (msg_flags, stream, level, data),
                Recvd::Again => tokio::time::sleep(Duration::from_millis(10)).await,
                Recvd::NotConnected => panic!("recvmsg: ENOTCONN"),
            }
        }
        panic!("nothing received within 5 s");
    }

    /// One recvmsg of up to `max_len` bytes, EAGAIN and ENOTCONN as values (anything else
    /// fails the test)
    pub(crate) async fn recvmsg_once(&mut self, max_len: u32) -> Recvd {
        match self.call(&Request::RecvMsg { flags: 0, max_len }).await {
            Answer::Recv {
                msg_flags,
                stream,
                level,
                data,
            } => Recvd::Msg {
                msg_flags,
                stream,
                level,
                data,
            },
            Answer::Err(e) if e == libc_eagain() => Recvd::Again,
            Answer::Err(e) if e == nix::errno::Errno::ENOTCONN as i32 => Recvd::NotConnected,
            other => panic!("recvmsg: {other:?}"),
        }
    }

    pub(crate) async fn send_handshake(&mut self, level: u8, data: &[u8]) -> Answer {
        self.call(&Request::SendMsg {
            flags: 0,
            stream_info: None,
            handshake_level: Some(level),
            payload: data,
        })
        .await
    }

    pub(crate) async fn send_stream(&mut self, id: i64, flags: u32, data: &[u8]) -> Answer {
        self.call(&Request::SendMsg {
            flags: 0,
            stream_info: Some(StreamInfo {
                stream_id: id,
                stream_flags: flags,
            }),
            handshake_level: None,
            payload: data,
        })
        .await
    }

    /// The next message of the receive queue (events decoded), waiting up to a few seconds
    pub(crate) async fn recv(&mut self) -> Result<(Option<StreamInfo>, Vec<u8>), Event> {
        let (msg_flags, stream, _, data) = self.recv_any().await;
        if msg_flags & MSG_QUIC_NOTIFICATION != 0 {
            return Err(Event::decode(&data).expect("known event"));
        }
        Ok((stream, data))
    }
}

pub(crate) fn libc_eagain() -> i32 {
    nix::errno::Errno::EAGAIN as i32
}
