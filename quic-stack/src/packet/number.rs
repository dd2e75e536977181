//! Packet number truncation and recovery (RFC 9000 §17.1, Appendix A.2 and A.3)

use bytes::BufMut;

/// Recover a full packet number from its `pn_len`-byte truncation (RFC 9000 Appendix A.3)
///
/// `largest_pn` is the largest packet number successfully processed in this space. `pn_len`
/// outside 1..=4 is clamped.
pub fn decode_packet_number(largest_pn: u64, truncated: u64, pn_len: usize) -> u64 {
    let bits = 8 * pn_len.clamp(1, 4) as u32;
    let win = 1u64 << bits;
    let hwin = win / 2;
    let mask = win - 1;
    let truncated = truncated & mask;
    let max = (1u64 << 62) - 1;
    let expected = largest_pn.min(max) + 1;
    let candidate = (expected & !mask) | truncated;
    // The candidate closest to `expected`, never past 2^62 nor below 0
    if candidate.saturating_add(hwin) <= expected && candidate < (1u64 << 62) - win {
        candidate + win
    } else if (candidate > expected + hwin || candidate > max) && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

/// Bytes (1..=4) to encode `pn` so the peer can recover it (RFC 9000 §17.1, Appendix A.2)
///
/// RFC 9000 §17.1: the sender MUST use a size able to represent more than twice the range
/// between the largest acknowledged packet number and the one being sent.
pub fn encode_packet_number_len(pn: u64, largest_acked: Option<u64>) -> usize {
    let unacked = match largest_acked {
        Some(acked) => pn.saturating_sub(acked),
        None => pn.saturating_add(1),
    };
    // Need 2 * unacked < 2^(8 * len), i.e. unacked < 2^(8 * len - 1)
    (1..=4)
        .find(|&len| unacked < 1u64 << (8 * len - 1))
        .unwrap_or(4)
}

/// Write the low `pn_len` bytes of `pn`, big-endian
pub(crate) fn write_truncated<B: BufMut>(buf: &mut B, pn: u64, pn_len: usize) {
    let len = pn_len.clamp(1, 4);
    buf.put_uint(pn, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appendix_a3_example() {
        // RFC 9000 Appendix A.3: largest 0xa82f30ea, truncated 0x9b32 in 16 bits
        assert_eq!(decode_packet_number(0xa82f_30ea, 0x9b32, 2), 0xa82f_9b32);
    }

    #[test]
    fn appendix_a2_example() {
        // RFC 9000 §17.1: largest acked 0xabe8b3, sending 0xac5c02 needs 16 bits; 0xace8fe, 24
        assert_eq!(encode_packet_number_len(0xac5c02, Some(0xabe8b3)), 2);
        assert_eq!(encode_packet_number_len(0xace8fe, Some(0xabe8b3)), 3);
        assert_eq!(encode_packet_number_len(0, None), 1);
        assert_eq!(encode_packet_number_len(127, None), 2);
        assert_eq!(encode_packet_number_len(126, None), 1);
        assert_eq!(encode_packet_number_len(1 << 40, Some(0)), 4);
    }

    #[test]
    fn decode_edges() {
        // Wraps forward past the window
        assert_eq!(decode_packet_number(0xff, 0x01, 1), 0x101);
        // Stays below when the candidate is too far ahead
        assert_eq!(decode_packet_number(0x100, 0xff, 1), 0xff);
        // Never goes negative
        assert_eq!(decode_packet_number(0, 0xff, 1), 0xff);
        // Never past 2^62
        let top = (1u64 << 62) - 1;
        assert_eq!(decode_packet_number(top, top & 0xff, 1), top);
        assert_eq!(decode_packet_number(u64::MAX, 0, 4) >> 62, 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn truncation_round_trip(acked in 0u64..(1 << 40), ahead in 1u64..(1 << 30)) {
            let pn = acked + ahead;
            let len = encode_packet_number_len(pn, Some(acked));
            let mut buf = Vec::new();
            write_truncated(&mut buf, pn, len);
            proptest::prop_assert_eq!(buf.len(), len);
            let truncated = buf.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
            // The receiver has seen at least `acked`, at most pn - 1
            proptest::prop_assert_eq!(decode_packet_number(acked, truncated, len), pn);
            proptest::prop_assert_eq!(decode_packet_number(pn - 1, truncated, len), pn);
        }
    }
}
