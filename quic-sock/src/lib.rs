//! quic-sock: the Linux kernel QUIC socket API for C programs, served by `quictun sockd`
//!
//! `socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC)` returns one end of an `AF_UNIX`
//! `SOCK_SEQPACKET` connection to the namespace's socket service (abstract name
//! `quictun-sockd`, or `$QUICTUN_SOCKD`). Every later call on that fd becomes one request and
//! one response in the protocol of [`quic_stack::sockapi::msg`]; the fd itself is real, so
//! poll/select/epoll work: the service makes it readable exactly when recvmsg has something.
//!
//! Entry points:
//! - `quicsock_*` (see `include/netinet/quic.h`): the socket calls under names that never
//!   clash with libc; each passes non-QUIC fds to libc;
//! - libquic's `quic_sendmsg`, `quic_recvmsg`, `quic_client_handshake`,
//!   `quic_server_handshake` (certificates: TLS in the service; PSK: GnuTLS in this process,
//!   see [`handshake`]), and libquic's GnuTLS API (`quic_handshake`, the step API, the
//!   session data/ALPN helpers);
//! - the standard names (`socket`, `sendmsg`, `close`, ...) in [`preload`], for LD_PRELOAD or
//!   for linking `-lquic_sock` ahead of libc.
//!
//! Rules: no panic crosses the C boundary (nothing here panics on service input: decoding
//! is total and errors become errno); libc is always reached through `sys` (dlsym
//! RTLD_NEXT) so our own interposed symbols are never re-entered.

pub mod api;
mod client;
pub mod error;
mod gnutls;
pub mod handshake;
#[cfg(not(test))]
pub mod preload;
mod registry;
mod sys;

pub use error::ClientError;
