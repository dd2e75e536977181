//! sendmsg semantics: which of handshake bytes, a datagram or stream data a call sends
//!
//! The kernel decides from the control messages and flags, in this order: a
//! QUIC_HANDSHAKE_INFO cmsg means raw TLS bytes; MSG_QUIC_DATAGRAM means one DATAGRAM frame;
//! otherwise stream data, on the stream named by a QUIC_STREAM_INFO cmsg or, without one, on
//! the "active" stream (last opened, not yet finished) or the next new one.

use super::consts::*;
use super::types::{HandshakeInfo, StreamInfo};
use super::{Errno, SockResult};

/// Which stream a stream send goes to, before the connection resolves it
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamChoice {
    /// An explicit id from the cmsg
    Id(u64),
    /// id -1 / no cmsg: the active stream, else the next bidirectional one
    ActiveOrNextBidi,
    /// id -1 / no cmsg with MSG_QUIC_STREAM_UNI: the active stream, else the next uni one
    ActiveOrNextUni,
}

/// The classified sendmsg
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendTarget {
    /// TLS handshake bytes at a crypto level (external TLS)
    Handshake {
        /// QUIC_CRYPTO_* level (INITIAL, HANDSHAKE or APP)
        level: u8,
    },
    /// One RFC 9221 DATAGRAM frame
    Datagram,
    /// Stream data
    Stream {
        /// Target stream
        choice: StreamChoice,
        /// MSG_QUIC_STREAM_* flags
        stream_flags: u32,
        /// A QUIC_STREAM_INFO cmsg was given: flow-control blocking reports ENOSPC
        explicit: bool,
    },
}

impl SendTarget {
    /// errno when the send is blocked by stream/connection flow control and can't wait
    pub fn flow_blocked_errno(&self) -> Errno {
        match self {
            Self::Stream { explicit: true, .. } => Errno::ENOSPC,
            _ => Errno::EAGAIN,
        }
    }
}

/// Classify one sendmsg call (`len` = total iov bytes)
pub fn classify_send(
    flags: u32,
    stream_info: Option<StreamInfo>,
    handshake: Option<HandshakeInfo>,
    len: usize,
) -> SockResult<SendTarget> {
    if flags & !SENDMSG_ALLOWED_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    if let Some(h) = handshake {
        // EARLY carries no handshake messages; unknown levels are invalid.
        if !matches!(
            h.crypto_level,
            QUIC_CRYPTO_INITIAL | QUIC_CRYPTO_HANDSHAKE | QUIC_CRYPTO_APP
        ) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Err(Errno::EMSGSIZE);
        }
        return Ok(SendTarget::Handshake {
            level: h.crypto_level,
        });
    }
    if flags & MSG_QUIC_DATAGRAM != 0 {
        if len == 0 {
            return Err(Errno::EMSGSIZE);
        }
        return Ok(SendTarget::Datagram);
    }
    let explicit = stream_info.is_some();
    let info = stream_info.unwrap_or(StreamInfo {
        stream_id: -1,
        stream_flags: flags & MSG_QUIC_STREAM_FLAGS,
    });
    let stream_flags = info.stream_flags & MSG_QUIC_STREAM_FLAGS;
    let choice = match info.stream_id {
        -1 if stream_flags & MSG_QUIC_STREAM_UNI != 0 => StreamChoice::ActiveOrNextUni,
        -1 => StreamChoice::ActiveOrNextBidi,
        id if id < -1 => return Err(Errno::EINVAL),
        id => StreamChoice::Id(id as u64),
    };
    Ok(SendTarget::Stream {
        choice,
        stream_flags,
        explicit,
    })
}

/// The stream-flag and plain-flag halves of a libquic `quic_sendmsg` flags argument
pub fn split_libquic_flags(flags: u32) -> (u32, u32) {
    (
        flags & MSG_QUIC_STREAM_FLAGS,
        flags & !MSG_QUIC_STREAM_FLAGS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let hs = |l| Some(HandshakeInfo { crypto_level: l });
        assert_eq!(
            classify_send(0, None, hs(QUIC_CRYPTO_INITIAL), 5),
            Ok(SendTarget::Handshake { level: 1 })
        );
        assert_eq!(
            classify_send(0, None, hs(QUIC_CRYPTO_EARLY), 5),
            Err(Errno::EINVAL)
        );
        assert_eq!(classify_send(0, None, hs(9), 5), Err(Errno::EINVAL));
        assert_eq!(
            classify_send(0, None, hs(QUIC_CRYPTO_APP), 0),
            Err(Errno::EMSGSIZE)
        );
        assert_eq!(
            classify_send(MSG_QUIC_DATAGRAM, None, None, 3),
            Ok(SendTarget::Datagram)
        );
        assert_eq!(
            classify_send(MSG_QUIC_DATAGRAM, None, None, 0),
            Err(Errno::EMSGSIZE)
        );
        // MSG_OOB (0x1) is not allowed.
        assert_eq!(classify_send(0x1, None, None, 3), Err(Errno::EINVAL));
        let t = classify_send(MSG_QUIC_STREAM_NEW | msg::DONTWAIT, None, None, 3).unwrap();
        assert_eq!(
            t,
            SendTarget::Stream {
                choice: StreamChoice::ActiveOrNextBidi,
                stream_flags: MSG_QUIC_STREAM_NEW,
                explicit: false
            }
        );
        assert_eq!(t.flow_blocked_errno(), Errno::EAGAIN);
        let t = classify_send(
            MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN | MSG_QUIC_STREAM_UNI,
            None,
            None,
            0,
        )
        .unwrap();
        assert!(matches!(
            t,
            SendTarget::Stream {
                choice: StreamChoice::ActiveOrNextUni,
                ..
            }
        ));
        let info = StreamInfo {
            stream_id: 4,
            stream_flags: MSG_QUIC_STREAM_FIN,
        };
        let t = classify_send(0, Some(info), None, 1).unwrap();
        assert_eq!(
            t,
            SendTarget::Stream {
                choice: StreamChoice::Id(4),
                stream_flags: MSG_QUIC_STREAM_FIN,
                explicit: true
            }
        );
        assert_eq!(t.flow_blocked_errno(), Errno::ENOSPC);
        let bad = StreamInfo {
            stream_id: -2,
            stream_flags: 0,
        };
        assert_eq!(classify_send(0, Some(bad), None, 1), Err(Errno::EINVAL));
        assert_eq!(
            split_libquic_flags(MSG_QUIC_STREAM_FIN | MSG_QUIC_DATAGRAM),
            (MSG_QUIC_STREAM_FIN, MSG_QUIC_DATAGRAM)
        );
    }
}
