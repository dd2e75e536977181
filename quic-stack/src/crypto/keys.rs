//! Our own packet and header protection on ring: AES-128-GCM, AES-256-GCM and
//! ChaCha20-Poly1305 (RFC 9001 §5), key derivation from a traffic secret, key update (§6) and
//! Initial keys for QUIC v1 and v2 (RFC 9001 §5.2, RFC 9369 §3.3)
//!
//! Sealing, opening and header protection work in place on caller buffers and never allocate.

use ring::{aead, hkdf};

use super::hkdf_label::expand_label;
use super::{CryptoError, HeaderKey, KeyPair, Keys, PacketKey, VERSION_1, VERSION_2};
use crate::shared::Side;

/// Length of every AEAD tag QUIC uses (RFC 9001 §5.3: all TLS 1.3 AEADs have 16-byte tags)
const TAG_LEN: usize = 16;
/// Length of the packet protection IV (RFC 9001 §5.1: the AEAD nonce length, 12 bytes)
const IV_LEN: usize = aead::NONCE_LEN;
/// Largest AEAD or header protection key (AES-256, ChaCha20)
const MAX_KEY_LEN: usize = 32;

/// RFC 9001 §5.2: initial_salt for QUIC v1
const INITIAL_SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
/// RFC 9369 §3.3.1: initial_salt for QUIC v2
const INITIAL_SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];

/// True for the QUIC versions whose keys this module can derive (v1 and v2)
pub fn is_supported_version(version: u32) -> bool {
    matches!(version, VERSION_1 | VERSION_2)
}

/// The HKDF labels of one QUIC version
pub(crate) struct Labels {
    pub(crate) key: &'static [u8],
    pub(crate) iv: &'static [u8],
    pub(crate) hp: &'static [u8],
    pub(crate) ku: &'static [u8],
}

/// RFC 9001 §5.1 and §6.1
const LABELS_V1: Labels = Labels {
    key: b"quic key",
    iv: b"quic iv",
    hp: b"quic hp",
    ku: b"quic ku",
};
/// RFC 9369 §3.3.2: v2 changes every label so v1 and v2 keys never coincide
const LABELS_V2: Labels = Labels {
    key: b"quicv2 key",
    iv: b"quicv2 iv",
    hp: b"quicv2 hp",
    ku: b"quicv2 ku",
};

/// Labels for `version`; versions other than v2 get the v1 labels (callers check
/// [`is_supported_version`] first, and the drafts that preceded v1 used the same labels)
pub(crate) fn labels(version: u32) -> &'static Labels {
    if version == VERSION_2 {
        &LABELS_V2
    } else {
        &LABELS_V1
    }
}

/// A TLS 1.3 cipher suite's AEAD and hash, as QUIC packet protection needs them
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash)]
pub enum Suite {
    /// TLS_AES_128_GCM_SHA256 (also what Initial packets always use, RFC 9001 §5.2)
    Aes128Gcm,
    /// TLS_AES_256_GCM_SHA384
    Aes256Gcm,
    /// TLS_CHACHA20_POLY1305_SHA256
    ChaCha20Poly1305,
}

impl Suite {
    fn aead(self) -> &'static aead::Algorithm {
        match self {
            Self::Aes128Gcm => &aead::AES_128_GCM,
            Self::Aes256Gcm => &aead::AES_256_GCM,
            Self::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }

    fn header_protection(self) -> &'static aead::quic::Algorithm {
        match self {
            Self::Aes128Gcm => &aead::quic::AES_128,
            Self::Aes256Gcm => &aead::quic::AES_256,
            Self::ChaCha20Poly1305 => &aead::quic::CHACHA20,
        }
    }

    pub(crate) fn hkdf(self) -> hkdf::Algorithm {
        match self {
            Self::Aes128Gcm | Self::ChaCha20Poly1305 => hkdf::HKDF_SHA256,
            Self::Aes256Gcm => hkdf::HKDF_SHA384,
        }
    }

    /// Length of the packet and header protection keys
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Gcm => 16,
            Self::Aes256Gcm | Self::ChaCha20Poly1305 => 32,
        }
    }

    /// Length of a traffic secret: the hash output length
    pub fn secret_len(self) -> usize {
        match self {
            Self::Aes128Gcm | Self::ChaCha20Poly1305 => 32,
            Self::Aes256Gcm => 48,
        }
    }

    /// Packets one key may seal (RFC 9001 §6.6)
    pub fn confidentiality_limit(self) -> u64 {
        match self {
            // RFC 9001 §6.6: AEAD_AES_128_GCM and AEAD_AES_256_GCM, 2^23 packets
            Self::Aes128Gcm | Self::Aes256Gcm => 1 << 23,
            // RFC 9001 §6.6: greater than the number of possible packets (2^62), so no limit
            Self::ChaCha20Poly1305 => u64::MAX,
        }
    }

    /// Failed openings tolerated with one key (RFC 9001 §6.6)
    pub fn integrity_limit(self) -> u64 {
        match self {
            // RFC 9001 §6.6: AEAD_AES_128_GCM and AEAD_AES_256_GCM, 2^52 forged packets
            Self::Aes128Gcm | Self::Aes256Gcm => 1 << 52,
            // RFC 9001 §6.6: AEAD_CHACHA20_POLY1305, 2^36 forged packets
            Self::ChaCha20Poly1305 => 1 << 36,
        }
    }
}

/// The raw values derived from one traffic secret (RFC 9001 §5.1), kept for tests
pub(crate) struct KeyMaterial {
    key: [u8; MAX_KEY_LEN],
    pub(crate) iv: [u8; IV_LEN],
    hp: [u8; MAX_KEY_LEN],
    key_len: usize,
}

impl KeyMaterial {
    /// Derive key, IV and header protection key from `secret` with `version`'s labels
    pub(crate) fn derive(version: u32, suite: Suite, secret: &[u8]) -> Result<Self, CryptoError> {
        let prk = hkdf::Prk::new_less_safe(suite.hkdf(), secret);
        let labels = labels(version);
        let key_len = suite.key_len();
        let mut material = Self {
            key: [0; MAX_KEY_LEN],
            iv: [0; IV_LEN],
            hp: [0; MAX_KEY_LEN],
            key_len,
        };
        expand_label(&prk, labels.key, b"", &mut material.key[..key_len])?;
        expand_label(&prk, labels.iv, b"", &mut material.iv)?;
        expand_label(&prk, labels.hp, b"", &mut material.hp[..key_len])?;
        Ok(material)
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }

    pub(crate) fn hp(&self) -> &[u8] {
        &self.hp[..self.key_len]
    }
}

/// AEAD packet protection with ring (RFC 9001 §5.3)
pub(crate) struct RingPacketKey {
    key: aead::LessSafeKey,
    iv: [u8; IV_LEN],
    suite: Suite,
}

impl RingPacketKey {
    /// A key from its raw bytes; fails if `key` has the wrong length for `suite`
    pub(crate) fn new(suite: Suite, key: &[u8], iv: [u8; IV_LEN]) -> Result<Self, CryptoError> {
        let key = aead::UnboundKey::new(suite.aead(), key).map_err(|_| CryptoError)?;
        Ok(Self {
            key: aead::LessSafeKey::new(key),
            iv,
            suite,
        })
    }

    /// RFC 9001 §5.3: the nonce is the IV XORed with the packet number, left-padded to the IV
    /// length and in network byte order
    fn nonce(&self, packet_number: u64) -> aead::Nonce {
        let mut nonce = self.iv;
        for (n, p) in nonce[IV_LEN - 8..]
            .iter_mut()
            .zip(packet_number.to_be_bytes())
        {
            *n ^= p;
        }
        aead::Nonce::assume_unique_for_key(nonce)
    }
}

impl PacketKey for RingPacketKey {
    fn seal(&self, packet_number: u64, header: &[u8], payload_and_tag: &mut [u8]) {
        seal_with(payload_and_tag, |payload| {
            self.key
                .seal_in_place_separate_tag(
                    self.nonce(packet_number),
                    aead::Aad::from(header),
                    payload,
                )
                .ok()
        });
    }

    fn open(
        &self,
        packet_number: u64,
        header: &[u8],
        payload_and_tag: &mut [u8],
    ) -> Result<usize, CryptoError> {
        self.key
            .open_in_place(
                self.nonce(packet_number),
                aead::Aad::from(header),
                payload_and_tag,
            )
            .map(|plain| plain.len())
            .map_err(|_| CryptoError)
    }

    fn tag_len(&self) -> usize {
        TAG_LEN
    }

    fn confidentiality_limit(&self) -> u64 {
        self.suite.confidentiality_limit()
    }

    fn integrity_limit(&self) -> u64 {
        self.suite.integrity_limit()
    }
}

/// Seal `payload_and_tag[..len - 16]` with `seal` and put the tag in the last 16 bytes
///
/// A buffer too short for the tag is a caller bug, and an AEAD refusal only happens for payloads
/// of gigabytes; in both cases the buffer is zeroed rather than left holding plaintext that the
/// caller might send.
pub(crate) fn seal_with<T: AsRef<[u8]>>(
    payload_and_tag: &mut [u8],
    seal: impl FnOnce(&mut [u8]) -> Option<T>,
) {
    let Some(split) = payload_and_tag.len().checked_sub(TAG_LEN) else {
        debug_assert!(false, "packet buffer shorter than the AEAD tag");
        payload_and_tag.fill(0);
        return;
    };
    let (payload, tag_out) = payload_and_tag.split_at_mut(split);
    match seal(payload) {
        Some(tag) if tag.as_ref().len() == TAG_LEN => tag_out.copy_from_slice(tag.as_ref()),
        _ => payload_and_tag.fill(0),
    }
}

/// Header protection with ring (RFC 9001 §5.4)
pub(crate) struct RingHeaderKey {
    key: aead::quic::HeaderProtectionKey,
}

impl RingHeaderKey {
    /// A key from its raw bytes; fails if `key` has the wrong length for `suite`
    pub(crate) fn new(suite: Suite, key: &[u8]) -> Result<Self, CryptoError> {
        let key = aead::quic::HeaderProtectionKey::new(suite.header_protection(), key)
            .map_err(|_| CryptoError)?;
        Ok(Self { key })
    }

    fn mask(&self, sample: &[u8]) -> Result<[u8; 5], CryptoError> {
        self.key.new_mask(sample).map_err(|_| CryptoError)
    }
}

/// The parts of a packet header protection touches: first byte, the 4 bytes that may hold the
/// packet number, and the sample that follows them (RFC 9001 §5.4.2)
pub(crate) fn split_for_header_protection(
    pn_offset: usize,
    sample_len: usize,
    packet: &mut [u8],
) -> Result<(&mut u8, &mut [u8], &[u8]), CryptoError> {
    // RFC 9001 §5.4.2: the sample starts 4 bytes after the start of the Packet Number field,
    // as if the packet number were 4 bytes long
    let sample_end = pn_offset.checked_add(4 + sample_len).ok_or(CryptoError)?;
    if pn_offset == 0 || packet.len() < sample_end {
        return Err(CryptoError);
    }
    let (head, rest) = packet.split_at_mut(pn_offset);
    let (pn, rest) = rest.split_at_mut(4);
    let first = head.first_mut().ok_or(CryptoError)?;
    Ok((first, pn, &rest[..sample_len]))
}

/// Bits of the first byte that header protection covers (RFC 9001 §5.4.1): 4 in a long header
/// (reserved bits and packet number length), 5 in a short one (adding the key phase)
pub(crate) fn first_byte_mask(first: u8) -> u8 {
    if first & 0x80 != 0 {
        0x0f
    } else {
        0x1f
    }
}

impl HeaderKey for RingHeaderKey {
    fn sample_size(&self) -> usize {
        self.key.algorithm().sample_len()
    }

    fn decrypt(&self, pn_offset: usize, packet: &mut [u8]) -> Result<(), CryptoError> {
        let (first, pn, sample) =
            split_for_header_protection(pn_offset, self.sample_size(), packet)?;
        let mask = self.mask(sample)?;
        *first ^= mask[0] & first_byte_mask(*first);
        // The packet number length is only readable once the first byte is unmasked
        let pn_len = usize::from(*first & 0x03) + 1;
        for (b, m) in pn.iter_mut().zip(&mask[1..]).take(pn_len) {
            *b ^= m;
        }
        Ok(())
    }

    fn encrypt(&self, pn_offset: usize, packet: &mut [u8]) -> Result<(), CryptoError> {
        let (first, pn, sample) =
            split_for_header_protection(pn_offset, self.sample_size(), packet)?;
        let mask = self.mask(sample)?;
        // Read the packet number length before the first byte is masked
        let pn_len = usize::from(*first & 0x03) + 1;
        *first ^= mask[0] & first_byte_mask(*first);
        for (b, m) in pn.iter_mut().zip(&mask[1..]).take(pn_len) {
            *b ^= m;
        }
        Ok(())
    }
}

/// Build ring-backed keys from raw material
fn keys_from_material(
    suite: Suite,
    material: &KeyMaterial,
) -> Result<(RingPacketKey, RingHeaderKey), CryptoError> {
    Ok((
        RingPacketKey::new(suite, material.key(), material.iv)?,
        RingHeaderKey::new(suite, material.hp())?,
    ))
}

fn try_keys_from_secret(
    version: u32,
    suite: Suite,
    secret: &[u8],
) -> Result<(RingPacketKey, RingHeaderKey), CryptoError> {
    keys_from_material(suite, &KeyMaterial::derive(version, suite, secret)?)
}

/// Packet and header protection keys for one direction from a TLS traffic secret
/// (RFC 9001 §5.1)
///
/// Any `version` other than [`VERSION_2`] uses the v1 labels; check [`is_supported_version`]
/// first.
pub fn keys_from_secret(
    version: u32,
    suite: Suite,
    secret: &[u8],
) -> (Box<dyn PacketKey>, Box<dyn HeaderKey>) {
    // Derivation cannot fail: the output lengths are fixed and small, HKDF takes secrets of any
    // length, and the derived keys have exactly the length each algorithm wants.
    let (packet, header) = try_keys_from_secret(version, suite, secret)
        .expect("fixed-length QUIC key derivation cannot fail");
    (Box::new(packet), Box::new(header))
}

/// The traffic secret of the next key phase (RFC 9001 §6.1: "quic ku"; RFC 9369 §3.3.2:
/// "quicv2 ku"); header protection keys are not updated
pub fn next_secret(version: u32, suite: Suite, secret: &[u8]) -> Vec<u8> {
    let prk = hkdf::Prk::new_less_safe(suite.hkdf(), secret);
    let mut next = vec![0; suite.secret_len()];
    // Cannot fail: the output is one hash block and the label is short
    expand_label(&prk, labels(version).ku, b"", &mut next)
        .expect("one-block HKDF-Expand-Label cannot fail");
    next
}

/// The client and server Initial secrets for a client-chosen Destination Connection ID
/// (RFC 9001 §5.2, RFC 9369 §3.3.1)
pub(crate) fn initial_secrets(
    version: u32,
    dcid: &[u8],
) -> Result<([u8; 32], [u8; 32]), CryptoError> {
    let salt = match version {
        VERSION_1 => &INITIAL_SALT_V1,
        VERSION_2 => &INITIAL_SALT_V2,
        _ => return Err(CryptoError),
    };
    let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(dcid);
    let mut client = [0; 32];
    let mut server = [0; 32];
    // RFC 9001 §5.2: the same labels for v1 and v2
    expand_label(&initial, b"client in", b"", &mut client)?;
    expand_label(&initial, b"server in", b"", &mut server)?;
    Ok((client, server))
}

/// Initial packet protection keys for `side`, derived from the Destination Connection ID of the
/// client's first Initial packet (RFC 9001 §5.2, RFC 9369 §3.3.1)
///
/// Fails for a version that is not v1 or v2.
pub fn initial_keys(version: u32, dcid: &[u8], side: Side) -> Result<Keys, CryptoError> {
    let (client, server) = initial_secrets(version, dcid)?;
    let (local, remote) = match side {
        Side::Client => (&client, &server),
        Side::Server => (&server, &client),
    };
    // RFC 9001 §5.2: Initial packets always use AEAD_AES_128_GCM with SHA-256
    let (local_packet, local_header) = try_keys_from_secret(version, Suite::Aes128Gcm, local)?;
    let (remote_packet, remote_header) = try_keys_from_secret(version, Suite::Aes128Gcm, remote)?;
    Ok(Keys {
        header: KeyPair {
            local: Box::new(local_header),
            remote: Box::new(remote_header),
        },
        packet: KeyPair {
            local: Box::new(local_packet),
            remote: Box::new(remote_packet),
        },
    })
}
