//! SOL_QUIC socket semantics without I/O: the Linux in-kernel QUIC API as pure data and rules
//!
//! The kernel's QUIC socket API (`socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC)`, SOL_QUIC options,
//! stream-info control messages, notification events) is served from userspace by the daemon's
//! socket service. This module holds everything of it that needs no connection and no file
//! descriptor, so it can be tested exhaustively and shared by the service and the C library:
//! - [`consts`]: every number of the uapi header;
//! - [`types`]: the uapi structs with explicit little-endian byte layouts;
//! - [`options`]: setsockopt/getsockopt rules (defaults, limits, state rules, errno choices);
//! - [`events`]: event mask, event encoding and the receive queue's delivery order;
//! - [`send`]: how a sendmsg call selects handshake, datagram or stream data;
//! - [`msg`]: the framed protocol between the C library and the service;
//! - [`psk`]: libquic's PSK file format;
//! - [`tickets`]: NewSessionTicket messages cut from a client's post-handshake CRYPTO data.
//!
//! Rule: nothing here panics on bytes from a socket; every failure is an [`Errno`] or a
//! [`msg::DecodeError`].

pub mod consts;
pub mod events;
pub mod msg;
pub mod options;
pub mod psk;
pub mod send;
pub mod tickets;
pub mod types;

use std::fmt;

/// A Linux errno value returned to the application (the kernel API reports errors this way)
#[derive(Copy, Clone, Eq, PartialEq, Hash)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($name:ident = $value:expr,)*) => {
        impl Errno {
            $(
                #[allow(missing_docs)]
                pub const $name: Self = Self($value);
            )*
            /// The symbolic name, when known
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

// Linux (asm-generic) values; x86_64 and aarch64 agree.
errnos! {
    EPERM = 1,
    EINTR = 4,
    EBADF = 9,
    EAGAIN = 11,
    ENOMEM = 12,
    EFAULT = 14,
    EINVAL = 22,
    EMFILE = 24,
    ENOSPC = 28,
    EPIPE = 32,
    ENOSTR = 60,
    EPROTO = 71,
    EBADMSG = 74,
    ENOTSOCK = 88,
    EDESTADDRREQ = 89,
    EMSGSIZE = 90,
    EPROTOTYPE = 91,
    ENOPROTOOPT = 92,
    EPROTONOSUPPORT = 93,
    EOPNOTSUPP = 95,
    EAFNOSUPPORT = 97,
    EADDRINUSE = 98,
    EADDRNOTAVAIL = 99,
    ENETUNREACH = 101,
    ECONNRESET = 104,
    ENOBUFS = 105,
    EISCONN = 106,
    ENOTCONN = 107,
    ETIMEDOUT = 110,
    ECONNREFUSED = 111,
    EALREADY = 114,
    EINPROGRESS = 115,
    EUCLEAN = 117,
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Errno {}

/// Result of a socket call: a value or an errno
pub type SockResult<T> = Result<T, Errno>;
