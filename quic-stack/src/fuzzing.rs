//! Fuzz target bodies, shared by cargo-fuzz and the corpus replay under cargo test
//!
//! Each body accepts arbitrary bytes and panics only when an invariant breaks: offsets that
//! escape the input, coalesced packets that do not add up, or a value that does not survive
//! encode → decode. `quic-stack/fuzz/fuzz_targets/*.rs` call these; the tests below replay
//! `quic-stack/fuzz/seeds/<target>/` and random inputs.
//!

use crate::frame::{self, Frame};
use crate::packet::{self, HeaderKind, LongType};
use crate::shared::{ConnectionId, Side};
use crate::transport_params::TransportParameters;

pub use crate::sockapi::msg::fuzz_sockapi_msg as sockapi_msg;
use crate::sockapi::psk;
use crate::sockapi::tickets::{TicketSplitter, MAX_TICKET_MESSAGE, TLS_NEW_SESSION_TICKET};

/// Parse the headers of a datagram and split it into its coalesced packets
///
/// The first input byte picks the local connection ID length (0..=20); the rest is the
/// datagram.
pub fn packet_header(data: &[u8]) {
    let Some((&selector, datagram)) = data.split_first() else {
        return;
    };
    let cid_len = usize::from(selector) % (ConnectionId::MAX_LEN + 1);
    let mut pos = 0;
    while let Some(rest) = datagram.get(pos..).filter(|r| !r.is_empty()) {
        let Ok(h) = packet::parse_header(rest, cid_len) else {
            break;
        };
        assert!(h.packet_len > 0 && h.packet_len <= rest.len(), "{h:?}");
        assert!(h.pn_offset <= h.packet_len, "{h:?}");
        for range in [&h.dcid_range, &h.scid_range, &h.token, &h.versions] {
            assert!(
                range.start <= range.end && range.end <= h.packet_len,
                "{h:?}"
            );
        }
        let dcid = &rest[h.dcid_range.clone()];
        assert_eq!(packet::peek_dcid(rest, cid_len), Some(dcid));
        if dcid.len() <= ConnectionId::MAX_LEN {
            assert_eq!(&h.dcid[..], dcid);
        }
        match h.kind {
            HeaderKind::Long(LongType::Retry) => {
                assert_eq!(h.retry_tag(rest).map(<[u8]>::len), Some(16));
                assert_eq!(h.token.end + 16, h.packet_len);
            }
            HeaderKind::Long(_) | HeaderKind::Short => {
                // Room for header protection's sample is guaranteed
                assert!(
                    h.pn_offset + packet::HP_SAMPLE_SPAN <= h.packet_len,
                    "{h:?}"
                );
            }
            HeaderKind::VersionNegotiation => {
                let n = h.supported_versions(rest).count();
                assert_eq!(n * 4, h.versions.len());
                assert!(n > 0);
            }
            HeaderKind::UnsupportedVersion => {}
        }
        if !matches!(h.kind, HeaderKind::Long(t) if t != LongType::Retry) {
            // Only Initial, 0-RTT and Handshake carry a Length; the rest fill the datagram
            assert_eq!(h.packet_len, rest.len());
        }
        pos += h.packet_len;
    }
    // The packets split so far tile a prefix of the datagram exactly
    assert!(pos <= datagram.len());
    let _ = packet::stateless_reset_token(datagram);
}

/// Iterate over the frames of a payload; every frame must re-encode to bytes that parse back
/// to an equal frame, and an error must end the iteration
pub fn frames(data: &[u8]) {
    let mut errors = 0;
    let mut buf = Vec::new();
    for result in frame::Iter::new(data) {
        assert_eq!(errors, 0, "frame yielded after an error");
        let f = match result {
            Ok(f) => f,
            Err(e) => {
                let _ = crate::TransportError::from(e);
                errors += 1;
                continue;
            }
        };
        buf.clear();
        f.encode(&mut buf);
        assert_eq!(buf.len(), f.encoded_len(), "{f:?}");
        let again: Vec<_> = frame::Iter::new(&buf).collect();
        assert_eq!(again, [Ok(f.clone())], "re-encoded {f:?}");
        let _ = f.ty().allowed_in(packet::PacketType::OneRtt);
        if let Frame::Ack(ack) = &f {
            check_ack(ack);
        }
    }
}

fn check_ack(ack: &frame::Ack<'_>) {
    let ranges: Vec<_> = ack.iter().collect();
    assert_eq!(ranges.len() as u64, ack.range_count + 1);
    assert_eq!(ranges.first().map(|r| *r.end()), Some(ack.largest));
    for pair in ranges.windows(2) {
        // Descending with at least one missing packet in between
        assert!(pair[1].end() + 1 < *pair[0].start(), "{ranges:?}");
    }
    // The hot-path encoder produces the same ranges from half-open ones
    let half_open = ranges.iter().map(|r| *r.start()..r.end() + 1);
    let mut buf = Vec::new();
    frame::encode_ack(&mut buf, half_open.clone(), ack.delay, ack.ecn.as_ref());
    assert_eq!(
        buf.len(),
        frame::ack_encoded_len(half_open, ack.delay, ack.ecn.as_ref())
    );
    let parsed: Vec<_> = frame::Iter::new(&buf).collect();
    let [Ok(Frame::Ack(again))] = &parsed[..] else {
        panic!("encode_ack output did not parse: {parsed:?}");
    };
    assert!(again.iter().eq(ranges.iter().cloned()));
    assert_eq!(again.ecn, ack.ecn);
}

/// Decode transport parameters as either side; whatever decodes must re-encode and decode
/// to the same value
pub fn transport_params(data: &[u8]) {
    for side in [Side::Client, Side::Server] {
        let Ok(params) = TransportParameters::decode(side, data) else {
            continue;
        };
        let mut buf = Vec::new();
        params.encode(&mut buf);
        assert_eq!(
            TransportParameters::decode(side, &buf).as_ref(),
            Ok(&params)
        );
        buf.clear();
        params.encode_with_grease(&mut buf, data.len() as u64, data.get(..4).unwrap_or(data));
        assert_eq!(TransportParameters::decode(side, &buf), Ok(params));
    }
}

/// Parse a libquic PSK file (a user's file); what parses has identities and keys, and the
/// client's limit is kept
pub fn psk_file(data: &[u8]) {
    if let Ok(all) = psk::parse(data, None) {
        assert!(all
            .iter()
            .all(|e| !e.identity.is_empty() && !e.key.is_empty()));
    }
    if let Ok(first) = psk::parse(data, Some(psk::CLIENT_MAX_ENTRIES)) {
        assert!(!first.is_empty() && first.len() <= psk::CLIENT_MAX_ENTRIES);
    }
}

/// Cut a server's post-handshake CRYPTO stream into NewSessionTickets, fed in two pieces (the
/// first byte picks the cut): every ticket handed out is one whole message, and the splitter
/// never holds more than one message could need
pub fn tickets(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(stream.len());
    let mut splitter = TicketSplitter::default();
    let mut out = splitter.push(&stream[..cut]);
    out.extend(splitter.push(&stream[cut..]));
    for m in &out {
        assert_eq!(m.first(), Some(&TLS_NEW_SESSION_TICKET));
        let len = usize::from(m[1]) << 16 | usize::from(m[2]) << 8 | usize::from(m[3]);
        assert_eq!(m.len(), len + 4);
    }
    assert!(splitter.pending_len() < MAX_TICKET_MESSAGE + stream.len());
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proptest::prelude::*;

    /// Run `body` on every file of `quic-stack/fuzz/seeds/<target>/`
    fn replay(target: &str, body: fn(&[u8])) {
        let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fuzz", "seeds", target]
            .iter()
            .collect();
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| body(&data));
            assert!(result.is_ok(), "seed {path:?} failed");
            count += 1;
        }
        assert!(count > 0, "no seeds in {dir:?}");
    }

    #[test]
    fn replay_packet_header_seeds() {
        replay("packet_header", super::packet_header);
    }

    #[test]
    fn replay_frames_seeds() {
        replay("frames", super::frames);
    }

    #[test]
    fn replay_transport_params_seeds() {
        replay("transport_params", super::transport_params);
    }

    #[test]
    fn replay_psk_file_seeds() {
        replay("psk_file", super::psk_file);
    }

    #[test]
    fn replay_tickets_seeds() {
        replay("tickets", super::tickets);
    }

    fn seed(target: &str, name: &str) -> Vec<u8> {
        let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fuzz", "seeds", target, name]
            .iter()
            .collect();
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
    }

    /// The seeds exercise what their names say, so the replay covers real paths
    #[test]
    fn seeds_are_meaningful() {
        use crate::frame::{Frame, Iter};
        use crate::packet::{parse_header, HeaderKind};
        use crate::transport_params::TransportParameters;
        use crate::Side;

        let payload = seed("frames", "every_frame_type");
        let frames: Vec<_> = Iter::new(&payload).map(Result::unwrap).collect();
        assert_eq!(frames.len(), 26);
        assert!(matches!(frames.last(), Some(Frame::Datagram { .. })));

        let d = seed("packet_header", "coalesced_initial_handshake_short");
        let (_, d) = d.split_first().unwrap();
        let mut kinds = Vec::new();
        let mut pos = 0;
        while pos < d.len() {
            let h = parse_header(&d[pos..], 8).unwrap();
            kinds.push(h.kind);
            pos += h.packet_len;
        }
        assert_eq!(pos, d.len());
        assert_eq!(kinds.len(), 3);
        assert_eq!(kinds[2], HeaderKind::Short);

        let p = TransportParameters::decode(
            Side::Server,
            &seed("transport_params", "server_all_params"),
        )
        .unwrap();
        assert!(p.preferred_address.is_some() && p.grease_quic_bit);
        assert_eq!(p.version_information.unwrap().available.len(), 2);
        assert!(TransportParameters::decode(
            Side::Client,
            &seed("transport_params", "rfc9001_client")
        )
        .is_ok());
    }

    /// Mutate a seed with a few byte flips, truncations or extensions
    fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
        let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fuzz", "seeds", target]
            .iter()
            .collect();
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        seeds.sort();
        seeds.push(vec![0]);
        (
            proptest::sample::select(seeds),
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            any::<usize>(),
        )
            .prop_map(|(mut data, flips, cut)| {
                for (at, byte) in flips {
                    let len = data.len();
                    if let Some(b) = data.get_mut(at % len.max(1)) {
                        *b = byte;
                    }
                }
                // Sometimes truncate
                if cut % 3 == 0 {
                    data.truncate(cut % (data.len() + 1));
                }
                data
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn packet_header_mutated(data in mutated("packet_header")) {
            super::packet_header(&data);
        }

        #[test]
        fn frames_mutated(data in mutated("frames")) {
            super::frames(&data);
        }

        #[test]
        fn transport_params_mutated(data in mutated("transport_params")) {
            super::transport_params(&data);
        }

        #[test]
        fn psk_file_mutated(data in mutated("psk_file")) {
            super::psk_file(&data);
        }

        #[test]
        fn tickets_mutated(data in mutated("tickets")) {
            super::tickets(&data);
        }

        #[test]
        fn packet_header_random(data in proptest::collection::vec(any::<u8>(), 0..1500)) {
            super::packet_header(&data);
        }

        #[test]
        fn frames_random(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            super::frames(&data);
        }

        #[test]
        fn transport_params_random(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            super::transport_params(&data);
        }
    }
}
