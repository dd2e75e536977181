//! The cryptographic boundary: packet and header protection keys, Initial secrets (v1 and v2),
//! Retry integrity, and the [`Session`] trait that a TLS 1.3 implementation provides
//!
//! Our own ring-based implementations live in sub-modules: [`initial_keys`] for Initial packets,
//! [`keys_from_secret`] and [`next_secret`] for keys built from TLS traffic secrets,
//! [`retry_tag`]/[`is_valid_retry`] for Retry integrity, and [`token`] for address-validation
//! tokens and stateless reset tokens. The rustls session adapter is in [`crate::tls`].

pub mod external;
mod hkdf_label;
mod keys;
mod retry;
#[cfg(test)]
mod tests;
pub mod token;

pub use self::keys::{initial_keys, is_supported_version, keys_from_secret, next_secret, Suite};
pub(crate) use self::keys::{seal_with, split_for_header_protection};
pub use self::retry::{is_valid_retry, retry_tag, RETRY_TAG_LEN};

use crate::error::TransportError;
use crate::shared::{Side, SpaceId};

/// QUIC version 1 (RFC 9000)
pub const VERSION_1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369)
pub const VERSION_2: u32 = 0x6b33_43cf;

/// A packet failed authentication or a key could not be used
#[derive(Debug, Copy, Clone, Eq, PartialEq, thiserror::Error)]
#[error("packet protection failed")]
pub struct CryptoError;

/// AEAD packet protection for one direction (RFC 9001 §5.3)
pub trait PacketKey: Send + Sync {
    /// Encrypt `payload_and_tag[..len - tag_len]` in place and write the tag into its last
    /// `tag_len()` bytes; `header` is the associated data
    fn seal(&self, packet_number: u64, header: &[u8], payload_and_tag: &mut [u8]);
    /// Decrypt in place; returns the plaintext length (input length minus the tag)
    fn open(
        &self,
        packet_number: u64,
        header: &[u8],
        payload_and_tag: &mut [u8],
    ) -> Result<usize, CryptoError>;
    /// Length of the AEAD tag
    fn tag_len(&self) -> usize;
    /// Packets that may be sealed with one key (RFC 9001 §6.6)
    fn confidentiality_limit(&self) -> u64;
    /// Forged packets tolerated before the connection must close (RFC 9001 §6.6)
    fn integrity_limit(&self) -> u64;
}

/// Header protection for one direction (RFC 9001 §5.4)
pub trait HeaderKey: Send + Sync {
    /// Bytes of ciphertext sampled, starting 4 bytes after the packet number offset
    fn sample_size(&self) -> usize;
    /// Remove protection: unmask the first byte and the packet number in place
    fn decrypt(&self, pn_offset: usize, packet: &mut [u8]) -> Result<(), CryptoError>;
    /// Apply protection to a packet whose payload is already sealed
    fn encrypt(&self, pn_offset: usize, packet: &mut [u8]) -> Result<(), CryptoError>;
}

/// A key for each direction
pub struct KeyPair<T> {
    /// Ours (used to seal)
    pub local: T,
    /// The peer's (used to open)
    pub remote: T,
}

/// Everything needed to protect and unprotect packets of one encryption level
pub struct Keys {
    /// Header protection keys
    pub header: KeyPair<Box<dyn HeaderKey>>,
    /// Packet protection keys
    pub packet: KeyPair<Box<dyn PacketKey>>,
}

/// Application-facing facts learned in the handshake
#[derive(Debug, Clone, Default, Eq, PartialEq)]
pub struct HandshakeData {
    /// Negotiated ALPN protocol
    pub alpn: Option<Vec<u8>>,
    /// SNI the client asked for (server side)
    pub server_name: Option<String>,
}

/// Output of a session that labels everything with its encryption level (external TLS)
pub enum LeveledOutput {
    /// Handshake bytes to send in CRYPTO frames of this packet number space
    Handshake(SpaceId, Vec<u8>),
    /// Keys for this packet number space
    Keys(SpaceId, Keys),
}

/// A TLS 1.3 handshake as QUIC needs it (RFC 9001 §4)
///
/// The connection feeds CRYPTO frame data in with [`Session::read_handshake`] and drains data to
/// send with [`Session::write_handshake`], which also hands over new keys as levels advance.
pub trait Session: Send {
    /// True until the handshake completes
    fn is_handshaking(&self) -> bool;
    /// Feed handshake bytes received at the current read level; `Ok(true)` when
    /// [`Session::handshake_data`] became available by this call
    fn read_handshake(&mut self, data: &[u8]) -> Result<bool, TransportError>;
    /// Append handshake bytes to send at the current write level to `buf`; returns keys for the
    /// next level when the level changes (the bytes written belong to the old level)
    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys>;
    /// Keys for the next 1-RTT key phase (RFC 9001 §6), once 1-RTT keys exist
    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>>;
    /// 0-RTT keys, when early data is possible (client: offered; server: accepted)
    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)>;
    /// Whether the server accepted 0-RTT (client side, after the handshake)
    fn early_data_accepted(&self) -> Option<bool>;
    /// The peer's encoded transport parameters, once received
    fn transport_parameters(&self) -> Option<&[u8]>;
    /// Client: the server's transport parameters remembered with the resumption ticket, which
    /// bound what 0-RTT may send (RFC 9000 §7.4.1); `None` once the handshake moved on
    fn early_transport_parameters(&self) -> Option<&[u8]> {
        None
    }
    /// ALPN and SNI, once known
    fn handshake_data(&self) -> Option<HandshakeData>;
    /// The peer's certificate chain (DER), once verified
    fn peer_identity(&self) -> Option<Vec<Vec<u8>>>;
    /// Export keying material (RFC 5705) for the application
    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), CryptoError>;
    /// Which side this session is
    fn side(&self) -> Side;

    /// Derive the keys of later packet number spaces for QUIC `version` instead of the one the
    /// session started with (compatible version negotiation, RFC 9368 §2.3); an error when the
    /// session cannot
    fn set_version(&mut self, _version: u32) -> Result<(), CryptoError> {
        Err(CryptoError)
    }

    /// Feed handshake bytes received in `space`; sessions that track the read level themselves
    /// ignore the space
    fn read_handshake_at(&mut self, _space: SpaceId, data: &[u8]) -> Result<bool, TransportError> {
        self.read_handshake(data)
    }

    /// Output with explicit levels, polled before [`Session::write_handshake`]; for sessions
    /// whose levels do not advance in lockstep with their output (external TLS)
    fn poll_leveled(&mut self) -> Option<LeveledOutput> {
        None
    }

    /// The external-TLS session behind this trait object, if it is one
    fn as_external(&mut self) -> Option<&mut external::ExternalSession> {
        None
    }

    /// Shared-reference form of [`Session::as_external`]
    fn as_external_ref(&self) -> Option<&external::ExternalSession> {
        None
    }
}
