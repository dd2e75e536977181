//! libquic's PSK file: one `identity:hexkey` per line
//!
//! The client (`quic_client_handshake` with `pkey_file`) reads at most
//! [`CLIENT_MAX_ENTRIES`] entries, like libquic, and offers the first; the server
//! (`quic_server_handshake` without a certificate) looks the client's identity up among all
//! entries, like GnuTLS's PSK password file. Blank lines and trailing whitespace (`\r` of DOS
//! files included) are ignored; anything else that is not `identity:hexkey` rejects the whole
//! file, so a typo fails before any packet is sent instead of as an unexplained TLS failure.

/// Entries a client reads (libquic's limit); later lines are not looked at
pub const CLIENT_MAX_ENTRIES: usize = 5;

/// One identity and its key
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PskEntry {
    /// What the client announces
    pub identity: Vec<u8>,
    /// The shared secret
    pub key: Vec<u8>,
}

/// Why a PSK file was refused (all become EINVAL, libquic's answer for a bad file)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PskFileError {
    /// Nothing but blank lines
    #[error("PSK file has no entries")]
    Empty,
    /// A line without `:`
    #[error("PSK file line {0}: no ':' between identity and key")]
    MissingColon(usize),
    /// Nothing before the `:`
    #[error("PSK file line {0}: empty identity")]
    EmptyIdentity(usize),
    /// The key is not an even number of hex digits
    #[error("PSK file line {0}: key is not an even number of hex digits")]
    BadHex(usize),
}

/// Parse at most `max` entries (None: all)
pub fn parse(text: &[u8], max: Option<usize>) -> Result<Vec<PskEntry>, PskFileError> {
    let mut out = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        if max.is_some_and(|m| out.len() >= m) {
            break;
        }
        let line = raw.trim_ascii_end();
        if line.is_empty() {
            continue;
        }
        let lineno = i + 1;
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(PskFileError::MissingColon(lineno))?;
        let (identity, hex) = (&line[..colon], &line[colon + 1..]);
        if identity.is_empty() {
            return Err(PskFileError::EmptyIdentity(lineno));
        }
        let key = decode_hex(hex).ok_or(PskFileError::BadHex(lineno))?;
        out.push(PskEntry {
            identity: identity.to_vec(),
            key,
        });
    }
    if out.is_empty() {
        return Err(PskFileError::Empty);
    }
    Ok(out)
}

fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    hex.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, key: &[u8]) -> PskEntry {
        PskEntry {
            identity: id.as_bytes().to_vec(),
            key: key.to_vec(),
        }
    }

    #[test]
    fn identity_and_hex_key_per_line() {
        let got = parse(b"alice:00ff10\r\n\n  \nbob:AbCd  \n", None).unwrap();
        assert_eq!(
            got,
            vec![
                entry("alice", &[0x00, 0xff, 0x10]),
                entry("bob", &[0xab, 0xcd])
            ]
        );
    }

    #[test]
    fn the_key_may_not_contain_a_colon_but_is_everything_after_the_first() {
        assert_eq!(parse(b"a:b:cc\n", None), Err(PskFileError::BadHex(1)));
    }

    #[test]
    fn bad_hex_is_refused_with_its_line() {
        assert_eq!(parse(b"a:0011\nb:zz\n", None), Err(PskFileError::BadHex(2)));
        assert_eq!(parse(b"a:001\n", None), Err(PskFileError::BadHex(1)));
        assert_eq!(parse(b"a:\n", None), Err(PskFileError::BadHex(1)));
        assert_eq!(parse(b"a:00 11\n", None), Err(PskFileError::BadHex(1)));
    }

    #[test]
    fn missing_colon_or_identity_is_refused() {
        assert_eq!(
            parse(b"a:00\nnocolon\n", None),
            Err(PskFileError::MissingColon(2))
        );
        assert_eq!(parse(b":0011\n", None), Err(PskFileError::EmptyIdentity(1)));
    }

    #[test]
    fn empty_file_or_only_blank_lines_has_no_entries() {
        assert_eq!(parse(b"", None), Err(PskFileError::Empty));
        assert_eq!(parse(b"\n \r\n\n", Some(5)), Err(PskFileError::Empty));
    }

    #[test]
    fn client_reads_five_entries_and_ignores_the_rest() {
        let mut text = String::new();
        for i in 0..5 {
            text.push_str(&format!("id{i}:0{i}\n"));
        }
        // A sixth entry, even a broken one, is never looked at by the client...
        text.push_str("sixth-without-colon\n");
        let got = parse(text.as_bytes(), Some(CLIENT_MAX_ENTRIES)).unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], entry("id0", &[0]));
        assert_eq!(got[4], entry("id4", &[4]));
        // ...while the server, which reads the whole file, refuses it.
        assert_eq!(
            parse(text.as_bytes(), None),
            Err(PskFileError::MissingColon(6))
        );
    }
}
