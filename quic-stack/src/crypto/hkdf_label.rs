//! HKDF-Expand-Label (RFC 8446 §7.1) on top of `ring::hkdf`, as QUIC uses it (RFC 9001 §5.1)
//!
//! The `HkdfLabel` structure is handed to ring as a list of slices, so no buffer is built.

use ring::hkdf;

use super::CryptoError;

/// Every TLS 1.3 label is prefixed with this (RFC 8446 §7.1)
const LABEL_PREFIX: &[u8] = b"tls13 ";

/// An output length for ring's HKDF, which wants a type describing it
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// Fill `out` with HKDF-Expand-Label(prk, label, context, out.len())
///
/// Fails only for lengths TLS cannot encode (a label over 249 bytes, a context over 255, an
/// output over 255 hash blocks).
pub(crate) fn expand_label(
    prk: &hkdf::Prk,
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    // HkdfLabel = uint16 length || opaque label<7..255> || opaque context<0..255>
    let length = u16::try_from(out.len()).map_err(|_| CryptoError)?;
    let label_len = u8::try_from(LABEL_PREFIX.len() + label.len()).map_err(|_| CryptoError)?;
    let context_len = u8::try_from(context.len()).map_err(|_| CryptoError)?;
    let length = length.to_be_bytes();
    let info: [&[u8]; 6] = [
        &length,
        &[label_len],
        LABEL_PREFIX,
        label,
        &[context_len],
        context,
    ];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| CryptoError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unencodable_lengths() {
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &[0; 32]);
        let mut out = [0u8; 16];
        assert!(expand_label(&prk, &[b'a'; 250], b"", &mut out).is_err());
        assert!(expand_label(&prk, b"x", &[0; 256], &mut out).is_err());
        let mut too_long = vec![0u8; 255 * 32 + 1];
        assert!(expand_label(&prk, b"x", b"", &mut too_long).is_err());
        assert!(expand_label(&prk, &[b'a'; 249], &[0; 255], &mut out).is_ok());
    }
}
