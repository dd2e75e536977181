//! Address-validation tokens (RFC 9000 §8.1) and stateless reset tokens (RFC 9000 §10.3)
//!
//! A token is `nonce (12) || AES-256-GCM(issued_secs (8) || odcid_len (1) || odcid) || tag (16)`,
//! with the client's IP address as associated data: a token presented from another address
//! fails authentication. Only the server that holds the key can read or mint tokens, so their
//! format is private to this module (RFC 9000 §8.1.1 leaves it to the server).

// `core::net` is the same type as `std::net`, and keeps socket-free code visibly socket-free
use core::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use ring::{aead, hmac};

use crate::shared::ConnectionId;

const NONCE_LEN: usize = aead::NONCE_LEN;
const TAG_LEN: usize = 16;
/// issued_secs + odcid length byte
const FIXED_PLAIN_LEN: usize = 8 + 1;
/// Longest token we produce
pub const MAX_TOKEN_LEN: usize = NONCE_LEN + FIXED_PLAIN_LEN + ConnectionId::MAX_LEN + TAG_LEN;

/// A token could not be used
#[derive(Debug, Copy, Clone, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Wrong length or layout
    #[error("malformed token")]
    Malformed,
    /// Not sealed by our key for this client address
    #[error("token failed authentication")]
    Invalid,
}

/// What a valid token tells the server
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct TokenData {
    /// When the token was issued, in the caller's seconds
    pub issued_secs: u64,
    /// The client's original Destination Connection ID for a Retry token (RFC 9000 §8.1.2:
    /// the server echoes it in original_destination_connection_id); `None` for a NEW_TOKEN token
    pub orig_dst_cid: Option<ConnectionId>,
}

impl TokenData {
    /// Whether the token is at most `lifetime_secs` old at `now_secs` (and not from the future)
    pub fn is_fresh(&self, now_secs: u64, lifetime_secs: u64) -> bool {
        now_secs
            .checked_sub(self.issued_secs)
            .is_some_and(|age| age <= lifetime_secs)
    }
}

/// The server's token sealing key
pub struct TokenKey {
    key: aead::LessSafeKey,
    /// The first 4 nonce bytes, fixed per `TokenKey` so that instances sharing a key (built with
    /// [`TokenKey::with_instance`]) never reuse a nonce
    nonce_prefix: [u8; 4],
    /// The last 8 nonce bytes: a counter, unique per key without a random source on every seal
    counter: AtomicU64,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").finish_non_exhaustive()
    }
}

impl TokenKey {
    /// A key from 32 secret bytes, used by this one instance only; take them from a CSPRNG,
    /// e.g. [`TokenKey::random`]
    pub fn new(key: [u8; 32]) -> Self {
        Self::with_instance(key, 0)
    }

    /// A key shared by several server instances: each needs a distinct `instance` number, since
    /// AES-GCM loses its security if two instances ever seal with the same nonce
    pub fn with_instance(key: [u8; 32], instance: u32) -> Self {
        // A 32-byte key is always valid for AES-256-GCM
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, &key)
            .expect("32-byte key is valid for AES-256-GCM");
        Self {
            key: aead::LessSafeKey::new(unbound),
            nonce_prefix: instance.to_be_bytes(),
            counter: AtomicU64::new(0),
        }
    }

    /// A fresh key from `rng`
    pub fn random<R: rand::RngCore + ?Sized>(rng: &mut R) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Self::new(key)
    }

    /// Seal a token for a client at `addr`, issued at `now_secs`; `odcid` is the original
    /// Destination Connection ID for a Retry token and `None` for a NEW_TOKEN token
    pub fn seal(&self, addr: IpAddr, now_secs: u64, odcid: Option<&ConnectionId>) -> Vec<u8> {
        let odcid: &[u8] = odcid.map_or(&[], |c| c);
        let mut out = Vec::with_capacity(NONCE_LEN + FIXED_PLAIN_LEN + odcid.len() + TAG_LEN);
        let nonce = self.next_nonce();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&now_secs.to_be_bytes());
        // ConnectionId is at most 20 bytes, so its length fits a byte
        out.push(odcid.len() as u8);
        out.extend_from_slice(odcid);
        let (aad_buf, aad_len) = address_aad(addr);
        let sealed = self.key.seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(&aad_buf[..aad_len]),
            &mut out[NONCE_LEN..],
        );
        match sealed {
            Ok(tag) => out.extend_from_slice(tag.as_ref()),
            // Unreachable for a few dozen bytes; never hand out plaintext
            Err(_) => out.clear(),
        }
        out
    }

    /// Authenticate and decode a token presented by a client at `addr`
    pub fn open(&self, addr: IpAddr, token: &[u8]) -> Result<TokenData, TokenError> {
        if token.len() < NONCE_LEN + FIXED_PLAIN_LEN + TAG_LEN || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&token[..NONCE_LEN]);
        // Decrypt a stack copy so the caller's buffer stays untouched and nothing is allocated
        let mut buf = [0u8; MAX_TOKEN_LEN];
        let sealed = &mut buf[..token.len() - NONCE_LEN];
        sealed.copy_from_slice(&token[NONCE_LEN..]);
        let (aad_buf, aad_len) = address_aad(addr);
        let plain = self
            .key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(&aad_buf[..aad_len]),
                sealed,
            )
            .map_err(|_| TokenError::Invalid)?;
        let (issued, rest) = plain.split_at(8);
        let mut issued_bytes = [0u8; 8];
        issued_bytes.copy_from_slice(issued);
        let (&odcid_len, odcid) = rest.split_first().ok_or(TokenError::Malformed)?;
        if usize::from(odcid_len) != odcid.len() {
            return Err(TokenError::Malformed);
        }
        let orig_dst_cid = if odcid.is_empty() {
            None
        } else {
            Some(ConnectionId::new(odcid).ok_or(TokenError::Malformed)?)
        };
        Ok(TokenData {
            issued_secs: u64::from_be_bytes(issued_bytes),
            orig_dst_cid,
        })
    }

    fn next_nonce(&self) -> [u8; NONCE_LEN] {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..4].copy_from_slice(&self.nonce_prefix);
        nonce[4..].copy_from_slice(&n.to_be_bytes());
        nonce
    }
}

/// The client address as associated data: a family byte, then the address bytes
fn address_aad(addr: IpAddr) -> ([u8; 17], usize) {
    let mut buf = [0u8; 17];
    match addr {
        IpAddr::V4(v4) => {
            buf[0] = 4;
            buf[1..5].copy_from_slice(&v4.octets());
            (buf, 5)
        }
        IpAddr::V6(v6) => {
            buf[0] = 6;
            buf[1..17].copy_from_slice(&v6.octets());
            (buf, 17)
        }
    }
}

/// The stateless reset token for a connection ID (RFC 9000 §10.3.2): HMAC-SHA256 of the CID
/// under a static key, truncated to 16 bytes, so the server can recompute it without state
pub fn stateless_reset_token(key: &hmac::Key, cid: &[u8]) -> [u8; 16] {
    let tag = hmac::sign(key, cid);
    let mut token = [0u8; 16];
    token.copy_from_slice(&tag.as_ref()[..16]);
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn cid(bytes: &[u8]) -> ConnectionId {
        ConnectionId::new(bytes).unwrap()
    }

    #[test]
    fn retry_token_round_trip() {
        let key = TokenKey::new([7; 32]);
        let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let odcid = cid(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let token = key.seal(addr, 1000, Some(&odcid));
        assert!(token.len() <= MAX_TOKEN_LEN);
        let data = key.open(addr, &token).unwrap();
        assert_eq!(data.issued_secs, 1000);
        assert_eq!(data.orig_dst_cid, Some(odcid));
        assert!(data.is_fresh(1010, 10));
        assert!(!data.is_fresh(1011, 10));
        assert!(!data.is_fresh(999, 10));
    }

    #[test]
    fn new_token_round_trip_v6() {
        let key = TokenKey::new([9; 32]);
        let addr = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let token = key.seal(addr, 5, None);
        let data = key.open(addr, &token).unwrap();
        assert_eq!(data.orig_dst_cid, None);
        // Two tokens never share a nonce, even across instances sharing a key
        assert_ne!(token, key.seal(addr, 5, None));
        let other = TokenKey::with_instance([9; 32], 1);
        let t2 = other.seal(addr, 5, None);
        assert_ne!(token[..NONCE_LEN], t2[..NONCE_LEN]);
        assert_eq!(key.open(addr, &t2).unwrap().issued_secs, 5);
    }

    #[test]
    fn rejects_other_address_key_and_tampering() {
        let key = TokenKey::new([1; 32]);
        let addr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let token = key.seal(addr, 42, Some(&cid(&[0xab; 20])));
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(key.open(other, &token), Err(TokenError::Invalid));
        assert_eq!(
            TokenKey::new([2; 32]).open(addr, &token),
            Err(TokenError::Invalid)
        );
        for i in 0..token.len() {
            let mut bad = token.clone();
            bad[i] ^= 0x40;
            assert!(key.open(addr, &bad).is_err());
        }
        assert_eq!(key.open(addr, &token[..10]), Err(TokenError::Malformed));
        assert_eq!(key.open(addr, &[0; 200]), Err(TokenError::Malformed));
    }

    #[test]
    fn reset_token_is_deterministic_per_cid() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &[3; 32]);
        let a = stateless_reset_token(&key, &[1, 2, 3]);
        assert_eq!(a, stateless_reset_token(&key, &[1, 2, 3]));
        assert_ne!(a, stateless_reset_token(&key, &[1, 2, 4]));
        let other = hmac::Key::new(hmac::HMAC_SHA256, &[4; 32]);
        assert_ne!(a, stateless_reset_token(&other, &[1, 2, 3]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            let key = TokenKey::new([5; 32]);
            let _ = key.open(IpAddr::V4(Ipv4Addr::LOCALHOST), &bytes);
        }
    }
}
