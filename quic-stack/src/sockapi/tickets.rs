//! Post-handshake TLS messages on a client's APP-level CRYPTO stream
//!
//! A client that runs its own TLS gets the server's NewSessionTickets the kernel's way: as
//! whole TLS messages (QUIC_EVENT_NEW_SESSION_TICKET, getsockopt(QUIC_SOCKOPT_SESSION_TICKET)).
//! CRYPTO frames cut the stream anywhere, so the service reassembles messages here. The bytes
//! come from the peer: nothing here panics, and a length no ticket can have drops the
//! buffered bytes instead of holding them.

/// TLS handshake message type of a NewSessionTicket (RFC 8446 §4)
pub const TLS_NEW_SESSION_TICKET: u8 = 4;
/// Largest post-handshake message kept while incomplete: a ticket's size is bounded by the
/// QUIC_SOCKOPT_SESSION_TICKET buffer, and the kernel's CRYPTO buffer is of that order
pub const MAX_TICKET_MESSAGE: usize = 64 * 1024;

/// Splits the server's APP-level CRYPTO stream into whole TLS handshake messages (type,
/// 24-bit length, body) and keeps the NewSessionTickets, headers included
#[derive(Debug, Default)]
pub struct TicketSplitter {
    pending: Vec<u8>,
}

impl TicketSplitter {
    /// Add the next CRYPTO bytes; returns the NewSessionTickets they complete, in order
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(head) = self.pending.get(..4) {
            let len = usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
            if len + 4 > MAX_TICKET_MESSAGE {
                // Not a message we could ever hand out; the TLS layer of the peer is broken
                self.pending.clear();
                break;
            }
            if self.pending.len() < len + 4 {
                break;
            }
            let msg: Vec<u8> = self.pending.drain(..len + 4).collect();
            if msg[0] == TLS_NEW_SESSION_TICKET {
                out.push(msg);
            }
        }
        out
    }

    /// Bytes of an incomplete message still held
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_cut_from_the_crypto_stream() {
        let nst = |n: u8| {
            let mut m = vec![TLS_NEW_SESSION_TICKET, 0, 0, 3];
            m.extend_from_slice(&[n; 3]);
            m
        };
        let mut r = TicketSplitter::default();
        let mut stream = nst(1);
        // Another post-handshake message type (a KeyUpdate would be 24) is skipped
        stream.extend_from_slice(&[24, 0, 0, 1, 0]);
        stream.extend_from_slice(&nst(2));
        // Split mid-header and mid-body: nothing until a message is whole
        assert!(r.push(&stream[..2]).is_empty());
        assert_eq!(r.push(&stream[2..9]), vec![nst(1)]);
        assert_eq!(r.push(&stream[9..]), vec![nst(2)]);
        assert!(r.pending_len() == 0);
        // An absurd length is dropped rather than buffered forever
        assert!(r
            .push(&[TLS_NEW_SESSION_TICKET, 0xff, 0xff, 0xff, 1])
            .is_empty());
        assert!(r.pending_len() == 0);
    }
}
