//! Compatible version negotiation (RFC 9368 §2.3, RFC 9369 §4)
//!
//! A client starts in its configured (original) version and lists every version it could
//! switch to in its version_information transport parameter. A server that prefers one of
//! those versions, and can convert the client's first flight into it, answers in that
//! (negotiated) version: its Initials and everything after are in the new version. v1 and v2
//! are compatible in both directions (RFC 9369 §4): the ClientHello is the same bytes in either.
//!
//! The server decides before creating any state, by reading the client's version_information
//! out of the ClientHello in the first Initial ([`peek_client_version_information`]); it keeps
//! the original version's Initial keys to read the client's Initials until the client
//! switches. The client switches on the first server Initial in a version it offered, once that
//! packet authenticates with the new version's Initial keys.

use super::recv::{kind, PacketKind};
use super::Connection;
use crate::crypto::{self, Keys, VERSION_1, VERSION_2};
use crate::frame::{self, Frame};
use crate::packet::{self, ProtectedHeader};
use crate::shared::{Side, SpaceId};
use crate::transport_params::{TransportParameters, VersionInformation};

/// TLS extension carrying QUIC transport parameters (RFC 9001 §8.2)
const QUIC_TRANSPORT_PARAMETERS_EXT: u16 = 0x39;
/// TLS handshake message type of a ClientHello
const CLIENT_HELLO: u8 = 1;

/// Whether a connection that started in `from` can be converted to `to` (RFC 9368 §2.3)
pub(crate) fn compatible(from: u32, to: u32) -> bool {
    let known = |v| v == VERSION_1 || v == VERSION_2;
    known(from) && known(to)
}

/// Server: the negotiated version for a client whose first Initial came in `original`.
///
/// The server's preference order wins (RFC 9368 §2.3): its first supported version the client
/// also lists and that `original` converts to. A client whose Chosen Version is not the
/// version it sent its Initial in is not upgraded; the handshake rejects it later.
pub(crate) fn choose_version(supported: &[u32], original: u32, client: &VersionInformation) -> u32 {
    if client.chosen != original {
        return original;
    }
    supported
        .iter()
        .copied()
        .find(|&v| v == original || (client.available.contains(&v) && compatible(original, v)))
        .unwrap_or(original)
}

/// Server: the version to answer a client's first Initial (`packet`, in `original`) in
pub(crate) fn server_version(
    supported: &[u32],
    original: u32,
    hdr: &ProtectedHeader,
    packet: &[u8],
) -> u32 {
    // Only a compatible version we prefer over the client's can change anything; skip the
    // extra decryption otherwise (the common case: a client in our first choice)
    let better = supported
        .iter()
        .take_while(|&&v| v != original)
        .any(|&v| compatible(original, v));
    if !better {
        return original;
    }
    match peek_client_version_information(original, hdr, packet) {
        Some(vi) => choose_version(supported, original, &vi),
        None => original,
    }
}

/// Server: the client's version_information, read from the ClientHello in the first Initial
/// packet of a datagram (`packet` holds exactly that packet). `None` when the packet does not
/// decrypt, the ClientHello spans more than this packet, or the client sent no
/// version_information: the connection then stays in the original version.
pub(crate) fn peek_client_version_information(
    version: u32,
    hdr: &ProtectedHeader,
    packet: &[u8],
) -> Option<VersionInformation> {
    let keys = crypto::initial_keys(version, &hdr.dcid, Side::Server).ok()?;
    let mut buf = packet.to_vec();
    keys.header.remote.decrypt(hdr.pn_offset, &mut buf).ok()?;
    let pn_len = usize::from(buf[0] & 0x03) + 1;
    let header_len = hdr.pn_offset + pn_len;
    if header_len > buf.len() {
        return None;
    }
    let truncated = buf[hdr.pn_offset..header_len]
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let pn = packet::decode_packet_number(0, truncated, pn_len);
    let (header, payload) = buf.split_at_mut(header_len);
    let len = keys.packet.remote.open(pn, header, payload).ok()?;
    let hello = contiguous_crypto(&payload[..len])?;
    let params = client_hello_transport_parameters(&hello)?;
    TransportParameters::decode(Side::Client, params)
        .ok()?
        .version_information
}

/// The CRYPTO stream from offset 0 as far as it is contiguous in one packet's frames
fn contiguous_crypto(payload: &[u8]) -> Option<Vec<u8>> {
    let mut pieces: Vec<(u64, &[u8])> = frame::Iter::new(payload)
        .map_while(Result::ok)
        .filter_map(|f| match f {
            Frame::Crypto { offset, data } => Some((offset, data)),
            _ => None,
        })
        .collect();
    pieces.sort_by_key(|&(offset, _)| offset);
    let mut out = Vec::new();
    for (offset, data) in pieces {
        let offset = usize::try_from(offset).ok()?;
        if offset > out.len() {
            break;
        }
        let skip = out.len() - offset;
        if skip < data.len() {
            out.extend_from_slice(&data[skip..]);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The quic_transport_parameters extension of a complete ClientHello (RFC 8446 §4.1.2)
fn client_hello_transport_parameters(msg: &[u8]) -> Option<&[u8]> {
    let mut r = Reader(msg);
    if r.u8()? != CLIENT_HELLO {
        return None;
    }
    let len = r.u24()?;
    let mut body = Reader(r.take(len)?);
    body.take(2 + 32)?; // legacy_version, random
    let n = usize::from(body.u8()?);
    body.take(n)?; // legacy_session_id
    let n = usize::from(body.u16()?);
    body.take(n)?; // cipher_suites
    let n = usize::from(body.u8()?);
    body.take(n)?; // legacy_compression_methods
    let n = usize::from(body.u16()?);
    let mut exts = Reader(body.take(n)?);
    while !exts.0.is_empty() {
        let ty = exts.u16()?;
        let n = usize::from(exts.u16()?);
        let data = exts.take(n)?;
        if ty == QUIC_TRANSPORT_PARAMETERS_EXT {
            return Some(data);
        }
    }
    None
}

/// A bounds-checked big-endian reader over TLS structures
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

/// What a connection remembers about a compatible version change
#[derive(Default)]
pub(super) struct VersionState {
    /// The version the client's first Initial was in, when the connection changed version
    pub(super) original: Option<u32>,
    /// Server: Initial keys of the original version, to read the client's Initials sent
    /// before it learned of the change
    original_initial_keys: Option<Keys>,
}

impl Connection {
    /// Server: the connection was created in a version negotiated away from the client's
    /// `original` one
    pub(crate) fn set_upgraded_from(&mut self, original: u32) -> Result<(), crypto::CryptoError> {
        let dcid = self.initial_dcid();
        self.version_state.original_initial_keys =
            Some(crypto::initial_keys(original, &dcid, self.side)?);
        self.version_state.original = Some(original);
        self.stats.version_upgrades += 1;
        Ok(())
    }

    /// The version the connection started in (differs from [`Connection::version`] after a
    /// compatible version negotiation)
    pub fn original_version(&self) -> u32 {
        self.version_state.original.unwrap_or(self.version)
    }

    /// The DCID the Initial keys derive from (RFC 9001 §5.2): the client's first DCID, or the
    /// server's SCID from a Retry
    fn initial_dcid(&self) -> crate::shared::ConnectionId {
        self.retry_src_cid.unwrap_or(self.orig_dst_cid)
    }

    /// Whether a long-header packet's version is acceptable; a client may switch to it here
    /// (`packet` is still protected and left unchanged)
    pub(super) fn accept_packet_version(&mut self, hdr: &ProtectedHeader, packet: &[u8]) -> bool {
        let Some(v) = hdr.version else {
            return true;
        };
        if v == self.version {
            return true;
        }
        match self.side {
            Side::Server => {
                // Client Initials sent before it saw our first packet stay in the original
                self.version_state.original == Some(v)
                    && kind(hdr) == PacketKind::Initial
                    && self.version_state.original_initial_keys.is_some()
            }
            Side::Client => self.try_switch_version(v, hdr, packet),
        }
    }

    /// Client: follow the server's first Initial into version `v` if we offered it and the
    /// packet authenticates under `v`'s Initial keys (an unauthenticated packet must not be able
    /// to move us off the version the server actually uses)
    fn try_switch_version(&mut self, v: u32, hdr: &ProtectedHeader, packet: &[u8]) -> bool {
        if self.peer_cid_set
            || kind(hdr) != PacketKind::Initial
            || self.version_state.original.is_some()
            || !self.endpoint_config.supported_versions.contains(&v)
            || !compatible(self.version, v)
        {
            return false;
        }
        let Ok(keys) = crypto::initial_keys(v, &self.initial_dcid(), self.side) else {
            return false;
        };
        let mut copy = packet.to_vec();
        if keys
            .header
            .remote
            .decrypt(hdr.pn_offset, &mut copy)
            .is_err()
        {
            return false;
        }
        let pn_len = usize::from(copy[0] & 0x03) + 1;
        let header_len = hdr.pn_offset + pn_len;
        if header_len > copy.len() {
            return false;
        }
        let truncated = copy[hdr.pn_offset..header_len]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let pn = packet::decode_packet_number(0, truncated, pn_len);
        let (header, payload) = copy.split_at_mut(header_len);
        if keys.packet.remote.open(pn, header, payload).is_err() {
            return false;
        }
        // TLS must derive the later keys with the new version's labels too
        if self.tls.set_version(v).is_err() {
            tracing::debug!(to = v, "TLS cannot change version: ignoring the packet");
            return false;
        }
        tracing::debug!(
            from = self.version,
            to = v,
            "compatible version negotiation"
        );
        self.version_state.original = Some(self.version);
        self.version = v;
        self.space_mut(SpaceId::Initial).keys = Some(keys);
        self.stats.version_upgrades += 1;
        true
    }

    /// Server: the original version's Initial keys for a client Initial still in that version
    pub(super) fn original_initial_keys(&self, hdr: &ProtectedHeader) -> Option<&Keys> {
        if self.side.is_client() || hdr.version != self.version_state.original {
            return None;
        }
        self.version_state.original_initial_keys.as_ref()
    }

    /// Drop the original version's keys with the Initial space
    pub(super) fn discard_original_keys(&mut self) {
        self.version_state.original_initial_keys = None;
    }

    /// The Chosen Version the peer's version_information must carry (RFC 9368 §4): a client
    /// names the version of its first Initial, a server the negotiated version
    pub(super) fn expected_peer_chosen_version(&self) -> u32 {
        match self.side {
            Side::Server => self.original_version(),
            Side::Client => self.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vi(chosen: u32, available: &[u32]) -> VersionInformation {
        VersionInformation {
            chosen,
            available: available.to_vec(),
        }
    }

    #[test]
    fn server_preference_decides() {
        let both = vi(VERSION_1, &[VERSION_1, VERSION_2]);
        assert_eq!(
            choose_version(&[VERSION_2, VERSION_1], VERSION_1, &both),
            VERSION_2
        );
        assert_eq!(
            choose_version(&[VERSION_1, VERSION_2], VERSION_1, &both),
            VERSION_1
        );
        // The client did not offer v2: no upgrade
        let v1_only = vi(VERSION_1, &[VERSION_1]);
        assert_eq!(
            choose_version(&[VERSION_2, VERSION_1], VERSION_1, &v1_only),
            VERSION_1
        );
        // A Chosen Version that is not the Initial's version is left to the handshake to reject
        let lying = vi(VERSION_2, &[VERSION_1, VERSION_2]);
        assert_eq!(
            choose_version(&[VERSION_2, VERSION_1], VERSION_1, &lying),
            VERSION_1
        );
        // Unknown versions are never chosen
        let odd = vi(VERSION_1, &[0x1a2a_3a4a, VERSION_1]);
        assert_eq!(
            choose_version(&[0x1a2a_3a4a, VERSION_1], VERSION_1, &odd),
            VERSION_1
        );
    }

    #[test]
    fn client_hello_extension_is_found() {
        // A minimal ClientHello: version, random, empty session id, one suite, null
        // compression, then an unrelated extension and the transport parameters
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        let exts = [
            &[0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04][..],
            &[0x00, 0x39, 0x00, 0x02, 0xaa, 0xbb][..],
        ]
        .concat();
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut msg = vec![CLIENT_HELLO, 0, 0, body.len() as u8];
        msg.extend_from_slice(&body);
        assert_eq!(
            client_hello_transport_parameters(&msg),
            Some(&[0xaa, 0xbb][..])
        );
        // Truncated anywhere: nothing, never a panic
        for cut in 0..msg.len() {
            assert_eq!(client_hello_transport_parameters(&msg[..cut]), None);
        }
    }

    #[test]
    fn crypto_frames_reassemble_in_order() {
        let mut payload = Vec::new();
        for (offset, data) in [(3, b"def"), (0, b"abc"), (10, b"xyz")] {
            frame::encode_crypto_header(&mut payload, offset, data.len());
            payload.extend_from_slice(data);
        }
        assert_eq!(contiguous_crypto(&payload).as_deref(), Some(&b"abcdef"[..]));
    }
}
