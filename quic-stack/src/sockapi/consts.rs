//! Numbers of the Linux in-kernel QUIC socket API (uapi `linux/quic.h`), mirrored exactly
//!
//! Every value here is observable by applications built against the kernel header, so none may
//! change. Values are the Linux/glibc ones (x86_64 and aarch64 agree for all of them).

/// `IPPROTO_QUIC`: the protocol argument of `socket(2)`
pub const IPPROTO_QUIC: i32 = 261;
/// `SOL_QUIC`: the level of QUIC socket options and control messages
pub const SOL_QUIC: i32 = 288;

/// QUIC version 1 (RFC 9000)
pub const QUIC_VERSION_V1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369)
pub const QUIC_VERSION_V2: u32 = 0x6b33_43cf;

/// cmsg type carrying a `quic_stream_info`
pub const QUIC_STREAM_INFO: i32 = 0;
/// cmsg type carrying a `quic_handshake_info`
pub const QUIC_HANDSHAKE_INFO: i32 = 1;

/// Stream id bit: server-initiated
pub const QUIC_STREAM_TYPE_SERVER_MASK: i64 = 0x1;
/// Stream id bit: unidirectional
pub const QUIC_STREAM_TYPE_UNI_MASK: i64 = 0x2;
/// Both stream-type bits
pub const QUIC_STREAM_TYPE_MASK: i64 = 0x3;

/// Open the stream with this send (alias of MSG_SYN)
pub const MSG_QUIC_STREAM_NEW: u32 = 0x400;
/// Last data of the stream / FIN reached on receive (alias of MSG_FIN)
pub const MSG_QUIC_STREAM_FIN: u32 = 0x200;
/// With stream id -1, pick the next unidirectional stream (alias of MSG_CONFIRM)
pub const MSG_QUIC_STREAM_UNI: u32 = 0x800;
/// Fail with EAGAIN instead of blocking on the peer's MAX_STREAMS (alias of MSG_WAITFORONE)
pub const MSG_QUIC_STREAM_DONTWAIT: u32 = 0x10000;
/// When blocked, emit STREAMS_BLOCKED / DATA_BLOCKED frames (alias of MSG_ERRQUEUE)
pub const MSG_QUIC_STREAM_SNDBLOCK: u32 = 0x2000;
/// RFC 9221 unreliable datagram (alias of MSG_RST)
pub const MSG_QUIC_DATAGRAM: u32 = 0x1000;
/// The received buffer holds an event (alias of MSG_MORE)
pub const MSG_QUIC_NOTIFICATION: u32 = 0x8000;
/// The five flags that may appear in `quic_stream_info.stream_flags`
pub const MSG_QUIC_STREAM_FLAGS: u32 = MSG_QUIC_STREAM_NEW
    | MSG_QUIC_STREAM_FIN
    | MSG_QUIC_STREAM_UNI
    | MSG_QUIC_STREAM_DONTWAIT
    | MSG_QUIC_STREAM_SNDBLOCK;

/// Generic Linux `MSG_*` bits the QUIC socket honours
pub mod msg {
    /// MSG_PEEK
    pub const PEEK: u32 = 0x2;
    /// MSG_CTRUNC
    pub const CTRUNC: u32 = 0x8;
    /// MSG_TRUNC
    pub const TRUNC: u32 = 0x20;
    /// MSG_DONTWAIT
    pub const DONTWAIT: u32 = 0x40;
    /// MSG_EOR
    pub const EOR: u32 = 0x80;
    /// MSG_WAITALL
    pub const WAITALL: u32 = 0x100;
    /// MSG_NOSIGNAL
    pub const NOSIGNAL: u32 = 0x4000;
    /// MSG_MORE (cork); on receive the same bit is MSG_QUIC_NOTIFICATION
    pub const MORE: u32 = 0x8000;
    /// MSG_BATCH
    pub const BATCH: u32 = 0x40000;
}

/// Every flag `sendmsg` accepts on a QUIC socket; any other bit is EINVAL
pub const SENDMSG_ALLOWED_FLAGS: u32 = MSG_QUIC_STREAM_FLAGS
    | msg::BATCH
    | msg::MORE
    | msg::DONTWAIT
    | msg::NOSIGNAL
    | msg::WAITALL
    | MSG_QUIC_DATAGRAM;

/// Crypto level: 1-RTT application data (note: 0, not 3)
pub const QUIC_CRYPTO_APP: u8 = 0;
/// Crypto level: Initial
pub const QUIC_CRYPTO_INITIAL: u8 = 1;
/// Crypto level: Handshake
pub const QUIC_CRYPTO_HANDSHAKE: u8 = 2;
/// Crypto level: 0-RTT
pub const QUIC_CRYPTO_EARLY: u8 = 3;
/// One past the last crypto level
pub const QUIC_CRYPTO_MAX: u8 = 4;

/// Congestion control: NewReno (default)
pub const QUIC_CONG_ALG_RENO: u8 = 0;
/// Congestion control: CUBIC
pub const QUIC_CONG_ALG_CUBIC: u8 = 1;
/// One past the last congestion control algorithm
pub const QUIC_CONG_ALG_MAX: u8 = 2;

/// Size of `quic_crypto_secret.secret`
pub const QUIC_CRYPTO_SECRET_BUFFER_SIZE: usize = 48;
/// Size of `quic_connection_close.phrase` (NUL included)
pub const QUIC_CLOSE_PHRASE_BUFFER_SIZE: usize = 64;

/// TLS cipher id (kTLS numbering): AES-128-GCM
pub const TLS_CIPHER_AES_GCM_128: u32 = 51;
/// TLS cipher id: AES-256-GCM
pub const TLS_CIPHER_AES_GCM_256: u32 = 52;
/// TLS cipher id: AES-128-CCM
pub const TLS_CIPHER_AES_CCM_128: u32 = 53;
/// TLS cipher id: ChaCha20-Poly1305
pub const TLS_CIPHER_CHACHA20_POLY1305: u32 = 54;

/// Socket option: enable/disable one event type
pub const QUIC_SOCKOPT_EVENT: i32 = 0;
/// Socket option: open a local stream (getsockopt, in/out)
pub const QUIC_SOCKOPT_STREAM_OPEN: i32 = 1;
/// Socket option: send RESET_STREAM
pub const QUIC_SOCKOPT_STREAM_RESET: i32 = 2;
/// Socket option: send STOP_SENDING
pub const QUIC_SOCKOPT_STREAM_STOP_SENDING: i32 = 3;
/// Socket option: connection id sets (retire, switch, query)
pub const QUIC_SOCKOPT_CONNECTION_ID: i32 = 4;
/// Socket option: application close code and phrase / peer's close info
pub const QUIC_SOCKOPT_CONNECTION_CLOSE: i32 = 5;
/// Socket option: migrate to a new local address / set preferred address
pub const QUIC_SOCKOPT_CONNECTION_MIGRATION: i32 = 6;
/// Socket option: start a 1-RTT key update
pub const QUIC_SOCKOPT_KEY_UPDATE: i32 = 7;
/// Socket option: local or peer transport parameters
pub const QUIC_SOCKOPT_TRANSPORT_PARAM: i32 = 8;
/// Socket option: per-socket configuration
pub const QUIC_SOCKOPT_CONFIG: i32 = 9;
/// Socket option: address-validation token
pub const QUIC_SOCKOPT_TOKEN: i32 = 10;
/// Socket option: ALPN list as a comma-separated string
pub const QUIC_SOCKOPT_ALPN: i32 = 11;
/// Socket option: session ticket / ticket key
pub const QUIC_SOCKOPT_SESSION_TICKET: i32 = 12;
/// Socket option: install a TLS traffic secret (external TLS)
pub const QUIC_SOCKOPT_CRYPTO_SECRET: i32 = 13;
/// Socket option: encoded transport-parameters TLS extension (external TLS)
pub const QUIC_SOCKOPT_TRANSPORT_PARAM_EXT: i32 = 14;
/// Socket option (quictun extension, no kernel equivalent): int, set before listen(). A no-op
/// kept for older programs: accepted sockets choose external TLS or the built-in handshake
/// after accept(), as in the kernel
pub const QUIC_SOCKOPT_EXTERNAL_TLS_LISTENER: i32 = 0x5154;

/// Event: none
pub const QUIC_EVENT_NONE: u8 = 0;
/// Event: a stream changed state
pub const QUIC_EVENT_STREAM_UPDATE: u8 = 1;
/// Event: MAX_STREAM_DATA raised a stream's send limit
pub const QUIC_EVENT_STREAM_MAX_DATA: u8 = 2;
/// Event: MAX_STREAMS received
pub const QUIC_EVENT_STREAM_MAX_STREAM: u8 = 3;
/// Event: connection ids retired
pub const QUIC_EVENT_CONNECTION_ID: u8 = 4;
/// Event: connection closed by peer, stateless reset or idle timeout
pub const QUIC_EVENT_CONNECTION_CLOSE: u8 = 5;
/// Event: path switched
pub const QUIC_EVENT_CONNECTION_MIGRATION: u8 = 6;
/// Event: a packet in the new key phase was received
pub const QUIC_EVENT_KEY_UPDATE: u8 = 7;
/// Event: NEW_TOKEN received
pub const QUIC_EVENT_NEW_TOKEN: u8 = 8;
/// Event: NewSessionTicket received
pub const QUIC_EVENT_NEW_SESSION_TICKET: u8 = 9;
/// One past the last event type
pub const QUIC_EVENT_MAX: u8 = 10;

/// Stream states reported in `quic_stream_update.state`
pub mod stream_state {
    /// send side: ready
    pub const SEND_READY: u8 = 0;
    /// send side: sending
    pub const SEND_SEND: u8 = 1;
    /// send side: all data sent
    pub const SEND_SENT: u8 = 2;
    /// send side: all data acknowledged
    pub const SEND_RECVD: u8 = 3;
    /// send side: RESET_STREAM sent
    pub const SEND_RESET_SENT: u8 = 4;
    /// send side: RESET_STREAM acknowledged
    pub const SEND_RESET_RECVD: u8 = 5;
    /// receive side: receiving
    pub const RECV_RECV: u8 = 6;
    /// receive side: final size known
    pub const RECV_SIZE_KNOWN: u8 = 7;
    /// receive side: all data received
    pub const RECV_RECVD: u8 = 8;
    /// receive side: all data read
    pub const RECV_READ: u8 = 9;
    /// receive side: RESET_STREAM received
    pub const RECV_RESET_RECVD: u8 = 10;
    /// receive side: reset delivered to the application
    pub const RECV_RESET_READ: u8 = 11;
}

/// Transport error codes as in the uapi `QUIC_TRANSPORT_ERROR_*` enum (RFC 9000 §20.1)
pub mod transport_error {
    /// NO_ERROR
    pub const NONE: u32 = 0x00;
    /// INTERNAL_ERROR
    pub const INTERNAL: u32 = 0x01;
    /// CONNECTION_REFUSED
    pub const CONNECTION_REFUSED: u32 = 0x02;
    /// FLOW_CONTROL_ERROR
    pub const FLOW_CONTROL: u32 = 0x03;
    /// STREAM_LIMIT_ERROR
    pub const STREAM_LIMIT: u32 = 0x04;
    /// STREAM_STATE_ERROR
    pub const STREAM_STATE: u32 = 0x05;
    /// FINAL_SIZE_ERROR
    pub const FINAL_SIZE: u32 = 0x06;
    /// FRAME_ENCODING_ERROR
    pub const FRAME_ENCODING: u32 = 0x07;
    /// TRANSPORT_PARAMETER_ERROR
    pub const TRANSPORT_PARAM: u32 = 0x08;
    /// CONNECTION_ID_LIMIT_ERROR
    pub const CONNECTION_ID_LIMIT: u32 = 0x09;
    /// PROTOCOL_VIOLATION
    pub const PROTOCOL_VIOLATION: u32 = 0x0a;
    /// INVALID_TOKEN
    pub const INVALID_TOKEN: u32 = 0x0b;
    /// APPLICATION_ERROR
    pub const APPLICATION: u32 = 0x0c;
    /// CRYPTO_BUFFER_EXCEEDED
    pub const CRYPTO_BUF_EXCEEDED: u32 = 0x0d;
    /// KEY_UPDATE_ERROR
    pub const KEY_UPDATE: u32 = 0x0e;
    /// AEAD_LIMIT_REACHED
    pub const AEAD_LIMIT_REACHED: u32 = 0x0f;
    /// NO_VIABLE_PATH
    pub const NO_VIABLE_PATH: u32 = 0x10;
    /// VERSION_NEGOTIATION_ERROR (RFC 9368)
    pub const VERSION_NEGOTIATION: u32 = 0x11;
    /// CRYPTO_ERROR base; the TLS alert is added
    pub const CRYPTO: u32 = 0x100;
}

/// Linux socket states the kernel reports in `sk_state`
pub mod sk_state {
    /// TCP_ESTABLISHED
    pub const ESTABLISHED: u8 = 1;
    /// TCP_SYN_RECV, used for "handshake in progress"
    pub const ESTABLISHING: u8 = 3;
    /// TCP_CLOSE
    pub const CLOSED: u8 = 7;
    /// TCP_LISTEN
    pub const LISTENING: u8 = 10;
}

/// Address families and socket types the API accepts (Linux values)
pub mod net {
    /// AF_UNSPEC
    pub const AF_UNSPEC: u16 = 0;
    /// AF_INET
    pub const AF_INET: u16 = 2;
    /// AF_INET6
    pub const AF_INET6: u16 = 10;
    /// SOCK_STREAM
    pub const SOCK_STREAM: i32 = 1;
    /// SOCK_DGRAM
    pub const SOCK_DGRAM: i32 = 2;
    /// SOCK_NONBLOCK (in the socket type argument)
    pub const SOCK_NONBLOCK: i32 = 0o4000;
    /// SOCK_CLOEXEC (in the socket type argument)
    pub const SOCK_CLOEXEC: i32 = 0o2_000_000;
    /// `sizeof(struct sockaddr_in)`
    pub const SOCKADDR_IN_LEN: usize = 16;
    /// `sizeof(struct sockaddr_in6)`
    pub const SOCKADDR_IN6_LEN: usize = 28;
}

/// Largest optlen setsockopt accepts (larger → EINVAL)
pub const MAX_OPTLEN: usize = 4096;
/// Largest client token (QUIC_SOCKOPT_TOKEN set)
pub const MAX_TOKEN_LEN: usize = 120;
/// Largest ALPN string (QUIC_SOCKOPT_ALPN)
pub const MAX_ALPN_LEN: usize = 128;
/// Session ticket/key length bounds (QUIC_SOCKOPT_SESSION_TICKET set)
pub const SESSION_TICKET_MIN: usize = 64;
/// Upper bound of a session ticket
pub const SESSION_TICKET_MAX: usize = 4096;
/// Largest encoded transport-parameter extension (QUIC_SOCKOPT_TRANSPORT_PARAM_EXT get)
pub const MAX_TP_EXT_LEN: usize = 512;
