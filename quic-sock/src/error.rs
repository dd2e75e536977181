//! Errors of the client side of the service protocol

use quic_stack::sockapi::msg::DecodeError;

/// Why a call failed; every variant maps to the errno the application sees
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The service (or a local syscall) answered with this errno
    #[error("errno {0}")]
    Errno(i32),
    /// The service sent something that isn't the protocol
    #[error("protocol error: {0}")]
    Protocol(#[from] DecodeError),
    /// The service answered with a response of the wrong kind
    #[error("unexpected response op {0:#x}")]
    Unexpected(u8),
    /// The service closed the connection (it died or dropped this socket)
    #[error("service closed the socket")]
    ServiceGone,
}

impl ClientError {
    /// The errno for the application
    pub fn errno(self) -> i32 {
        match self {
            Self::Errno(e) => e,
            Self::Protocol(_) | Self::Unexpected(_) => libc::EPROTO,
            // A vanished service looks like a connection reset to the application.
            Self::ServiceGone => libc::ECONNRESET,
        }
    }
}
