//! Certificates: a small CA for a tunnel's peers (`quictun cert`), loading PEM files into rustls
//! types with one-line errors, and SPKI SHA-256 pins
//!
//! The CA is deliberately minimal: one self-signed ECDSA P-256 certificate named
//! [`CA_COMMON_NAME`]; peer certificates carry the peer name as CN and DNS name (plus any extra
//! DNS names and IPs) and are valid for both client and server authentication, since either end
//! of a tunnel may dial.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{io_reason, TlsConfig};

/// Common name of CAs made by `quictun cert --ca`
pub const CA_COMMON_NAME: &str = "quictun CA";
/// CA certificate file name
pub const CA_CERT_FILE: &str = "ca.crt";
/// CA key file name
pub const CA_KEY_FILE: &str = "ca.key";

/// Certificate errors; `Display` is one line naming the file and the fix
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// File cannot be read
    #[error("{key}: cannot read {path:?}: {reason} (create one with: quictun cert --out DIR ...)")]
    Read {
        /// Config key or CLI option naming the file
        key: String,
        /// File path
        path: PathBuf,
        /// OS reason
        reason: String,
    },
    /// No private key in the file
    #[error("{key}: {path:?} holds no private key (expected a PEM PKCS#8 key, as written by quictun cert)")]
    NoKey {
        /// Config key
        key: String,
        /// File path
        path: PathBuf,
    },
    /// No certificate in the file
    #[error("{key}: {path:?} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks, as written by quictun cert)")]
    NoCert {
        /// Config key
        key: String,
        /// File path
        path: PathBuf,
    },
    /// A certificate that does not parse as X.509
    #[error("{key}: {path:?} holds a malformed certificate ({reason})")]
    BadCert {
        /// Config key
        key: String,
        /// File path
        path: PathBuf,
        /// What is wrong
        reason: String,
    },
    /// Key and certificate do not belong together
    #[error("tls.key: {key_path:?} is not the key of the certificate in {cert_path:?} (pair each .crt with the .key written next to it)")]
    KeyMismatch {
        /// Key file
        key_path: PathBuf,
        /// Certificate file
        cert_path: PathBuf,
    },
    /// Refusing to overwrite
    #[error("cert: {0:?} already exists (pass --force to overwrite it)")]
    Exists(PathBuf),
    /// Cannot write an output file
    #[error("cert: cannot write {path:?}: {reason}")]
    Write {
        /// File path
        path: PathBuf,
        /// OS reason
        reason: String,
    },
    /// Invalid request, e.g. a bad DNS name
    #[error("cert: {0}")]
    Invalid(String),
    /// The CA files were not made by quictun cert, or do not belong together
    #[error("cert: {0}")]
    Ca(String),
}

/// SHA-256 fingerprint of a SubjectPublicKeyInfo, written `sha256:<64 hex digits>`
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpkiPin(pub [u8; 32]);

impl SpkiPin {
    /// Pin of the given DER SubjectPublicKeyInfo
    pub fn of_spki(spki_der: &[u8]) -> Self {
        let d = ring::digest::digest(&ring::digest::SHA256, spki_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// Pin of a DER certificate's public key
    pub fn of_cert(cert_der: &[u8]) -> Result<Self, &'static str> {
        Ok(Self::of_spki(tbs_fields(cert_der)?.spki))
    }
}

impl fmt::Display for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for SpkiPin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for SpkiPin {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let hex = s.trim().strip_prefix("sha256:").ok_or(())?;
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(());
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| ())?;
        }
        Ok(Self(out))
    }
}

/// One DER TLV: (tag, whole encoding, contents, rest)
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn der_tlv(input: &[u8]) -> Result<Tlv<'_>, &'static str> {
    let (&tag, rest) = input.split_first().ok_or("truncated")?;
    let (&first, rest) = rest.split_first().ok_or("truncated")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err("bad length");
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err("truncated");
    }
    let header = input.len() - rest.len();
    Ok((tag, &input[..header + len], &rest[..len], &rest[len..]))
}

struct TbsFields<'a> {
    subject: &'a [u8],
    spki: &'a [u8],
}

/// Walk Certificate → TBSCertificate to the subject and SubjectPublicKeyInfo (RFC 5280 §4.1)
fn tbs_fields(cert: &[u8]) -> Result<TbsFields<'_>, &'static str> {
    const SEQ: u8 = 0x30;
    let (tag, _, cert_body, _) = der_tlv(cert)?;
    if tag != SEQ {
        return Err("not a certificate");
    }
    let (tag, _, mut tbs, _) = der_tlv(cert_body)?;
    if tag != SEQ {
        return Err("not a certificate");
    }
    let mut fields = Vec::with_capacity(7);
    while fields.len() < 7 && !tbs.is_empty() {
        let (tag, whole, _, rest) = der_tlv(tbs)?;
        // [0] EXPLICIT version is optional: skip it so indexes match the v1 layout
        if !(fields.is_empty() && tag == 0xa0) {
            fields.push((tag, whole));
        }
        tbs = rest;
    }
    // serial, signature, issuer, validity, subject, spki
    match fields.as_slice() {
        [_, _, _, _, (SEQ, subject), (SEQ, spki), ..] => Ok(TbsFields { subject, spki }),
        _ => Err("no subject public key"),
    }
}

/// The subject common name of a DER certificate, which `quictun cert --name` sets to the peer
/// name; the server maps a verified client certificate to its `[[peer]]` by it
pub fn common_name(cert: &[u8]) -> Option<String> {
    const SET: u8 = 0x31;
    const SEQ: u8 = 0x30;
    const OID: u8 = 0x06;
    const CN_OID: &[u8] = &[0x55, 0x04, 0x03];
    let fields = tbs_fields(cert).ok()?;
    let (_, _, mut rdns, _) = der_tlv(fields.subject).ok()?;
    // Name ::= SEQUENCE OF SET OF AttributeTypeAndValue { type OID, value ANY }
    while !rdns.is_empty() {
        let (tag, _, mut set, rest) = der_tlv(rdns).ok()?;
        rdns = rest;
        if tag != SET {
            return None;
        }
        while !set.is_empty() {
            let (tag, _, atv, rest) = der_tlv(set).ok()?;
            set = rest;
            if tag != SEQ {
                return None;
            }
            let (tag, _, oid, value) = der_tlv(atv).ok()?;
            if tag == OID && oid == CN_OID {
                let (_, _, text, _) = der_tlv(value).ok()?;
                return std::str::from_utf8(text).ok().map(str::to_owned);
            }
        }
    }
    None
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|e| CertError::Read {
        key: key.to_string(),
        path: path.to_path_buf(),
        reason: io_reason(&e),
    })
}

/// Load every certificate of a PEM file (`key` names it in errors, e.g. `tls.cert`)
pub fn load_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let data = read(key, path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&data)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(CertError::NoCert {
            key: key.to_string(),
            path: path.to_path_buf(),
        });
    }
    for c in &certs {
        tbs_fields(c).map_err(|reason| CertError::BadCert {
            key: key.to_string(),
            path: path.to_path_buf(),
            reason: reason.to_string(),
        })?;
    }
    Ok(certs)
}

/// Load the private key of a PEM file
pub fn load_private_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let data = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|_| CertError::NoKey {
        key: key.to_string(),
        path: path.to_path_buf(),
    })
}

/// Load a CA file into a root store
pub fn load_roots(key: &str, path: &Path) -> Result<rustls::RootCertStore, CertError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(key, path)? {
        roots.add(c).map_err(|e| CertError::BadCert {
            key: key.to_string(),
            path: path.to_path_buf(),
            reason: one_line(&e.to_string()),
        })?;
    }
    Ok(roots)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Everything TLS needs, loaded from a [`TlsConfig`]
#[derive(Debug)]
pub struct TlsMaterial {
    /// Own certificate chain, leaf first
    pub chain: Vec<CertificateDer<'static>>,
    /// Own private key
    pub key: PrivateKeyDer<'static>,
    /// Trusted CA for peers, if configured
    pub roots: Option<rustls::RootCertStore>,
    /// Accepted peer SPKI pins (a peer passes if it matches the CA or any pin)
    pub pins: Vec<SpkiPin>,
}

impl TlsMaterial {
    /// Load and cross-check the files named by `tls`
    pub fn load(tls: &TlsConfig) -> Result<Self, CertError> {
        let chain = load_certs("tls.cert", &tls.cert)?;
        let key = load_private_key("tls.key", &tls.key)?;
        // Catch a swapped key early: a mismatch would otherwise surface as an opaque handshake
        // failure on the peer's side
        if let Ok(pem) = std::fs::read_to_string(&tls.key) {
            if let (Ok(kp), Ok(fields)) = (KeyPair::from_pem(&pem), tbs_fields(&chain[0])) {
                if kp.public_key_der() != fields.spki {
                    return Err(CertError::KeyMismatch {
                        key_path: tls.key.clone(),
                        cert_path: tls.cert.clone(),
                    });
                }
            }
        }
        let roots = tls
            .ca
            .as_deref()
            .map(|p| load_roots("tls.ca", p))
            .transpose()?;
        Ok(Self {
            chain,
            key,
            roots,
            pins: tls.pins.clone(),
        })
    }

    /// Pin of our own certificate, for the other side's `tls.pin`
    pub fn own_pin(&self) -> Option<SpkiPin> {
        self.chain.first().and_then(|c| SpkiPin::of_cert(c).ok())
    }
}

/// Fingerprint of a PEM certificate or private key file (`quictun cert --fingerprint`)
pub fn fingerprint_file(path: &Path) -> Result<SpkiPin, CertError> {
    let data = read("--fingerprint", path)?;
    if let Some(Ok(c)) = CertificateDer::pem_slice_iter(&data).next() {
        return SpkiPin::of_cert(&c).map_err(|reason| CertError::BadCert {
            key: "--fingerprint".into(),
            path: path.to_path_buf(),
            reason: reason.to_string(),
        });
    }
    let text = String::from_utf8_lossy(&data);
    match KeyPair::from_pem(&text) {
        Ok(kp) => Ok(SpkiPin::of_spki(&kp.public_key_der())),
        Err(_) => Err(CertError::NoCert {
            key: "--fingerprint".into(),
            path: path.to_path_buf(),
        }),
    }
}

/// Write `contents` to `path`; keys get mode 0600, and existing files are kept unless `force`
fn write_file(path: &Path, contents: &str, secret: bool, force: bool) -> Result<(), CertError> {
    let mut opts = OpenOptions::new();
    opts.write(true).mode(if secret { 0o600 } else { 0o644 });
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CertError::Exists(path.to_path_buf())
        } else {
            CertError::Write {
                path: path.to_path_buf(),
                reason: io_reason(&e),
            }
        }
    })?;
    // `mode` applies only on creation: tighten an overwritten key too
    if secret && force {
        use std::os::unix::fs::PermissionsExt;
        let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
    }
    f.write_all(contents.as_bytes())
        .map_err(|e| CertError::Write {
            path: path.to_path_buf(),
            reason: io_reason(&e),
        })
}

fn rcgen_err(e: rcgen::Error) -> CertError {
    CertError::Invalid(one_line(&e.to_string()))
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn check_free(paths: &[&Path], force: bool) -> Result<(), CertError> {
    if !force {
        if let Some(p) = paths.iter().find(|p| p.exists()) {
            return Err(CertError::Exists(p.to_path_buf()));
        }
    }
    Ok(())
}

fn ensure_dir(dir: &Path) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(|e| CertError::Write {
        path: dir.to_path_buf(),
        reason: io_reason(&e),
    })
}

/// Create `ca.crt` and `ca.key` in `dir`; returns the written paths
pub fn generate_ca(dir: &Path, force: bool) -> Result<Vec<PathBuf>, CertError> {
    ensure_dir(dir)?;
    let crt = dir.join(CA_CERT_FILE);
    let key = dir.join(CA_KEY_FILE);
    check_free(&[&crt, &key], force)?;
    let kp = KeyPair::generate().map_err(rcgen_err)?;
    let cert = ca_params().self_signed(&kp).map_err(rcgen_err)?;
    write_file(&key, &kp.serialize_pem(), true, force)?;
    write_file(&crt, &cert.pem(), false, force)?;
    Ok(vec![crt, key])
}

/// What goes into a peer certificate
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCertRequest {
    /// Peer name: file stem, CN and first DNS name
    pub name: String,
    /// Extra DNS names
    pub dns: Vec<String>,
    /// IP addresses
    pub ips: Vec<IpAddr>,
}

/// Create `<name>.crt` and `<name>.key` in `dir`, signed by the CA in `ca_dir`
pub fn generate_peer(
    dir: &Path,
    ca_dir: &Path,
    req: &PeerCertRequest,
    force: bool,
) -> Result<Vec<PathBuf>, CertError> {
    let name = req.name.trim();
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(CertError::Invalid(format!(
            "--name {name:?} must be letters, digits, '-', '_' or '.' (it becomes the file name and DNS name)"
        )));
    }
    // Load the CA; rcgen 0.13 (without x509-parser) cannot parse a certificate, so rebuild the
    // CA's parameters, which are fixed, and check that the result matches the file on disk.
    let ca_crt_path = ca_dir.join(CA_CERT_FILE);
    let ca_key_path = ca_dir.join(CA_KEY_FILE);
    let ca_key_pem = std::fs::read_to_string(&ca_key_path).map_err(|e| {
        CertError::Ca(format!(
            "cannot read {:?}: {} (create the CA first with: quictun cert --out {} --ca)",
            ca_key_path,
            io_reason(&e),
            ca_dir.display()
        ))
    })?;
    let ca_kp = KeyPair::from_pem(&ca_key_pem).map_err(|_| {
        CertError::Ca(format!(
            "{ca_key_path:?} holds no private key (expected the ca.key written by quictun cert --ca)"
        ))
    })?;
    let on_disk = load_certs("--ca-dir", &ca_crt_path)?;
    let ca_cert = ca_params().self_signed(&ca_kp).map_err(rcgen_err)?;
    let (disk, rebuilt) = match (tbs_fields(&on_disk[0]), tbs_fields(ca_cert.der())) {
        (Ok(d), Ok(r)) => (d, r),
        _ => {
            return Err(CertError::Ca(format!(
                "{ca_crt_path:?} is not a usable CA certificate"
            )))
        }
    };
    if disk.spki != rebuilt.spki || disk.subject != rebuilt.subject {
        return Err(CertError::Ca(format!(
            "{ca_crt_path:?} and {ca_key_path:?} do not belong together or were not made by quictun cert --ca"
        )));
    }

    ensure_dir(dir)?;
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    check_free(&[&crt, &key], force)?;

    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    let mut sans = Vec::new();
    for d in std::iter::once(name.to_string()).chain(req.dns.iter().cloned()) {
        let ia5 = d
            .clone()
            .try_into()
            .map_err(|_| CertError::Invalid(format!("--dns {d:?} is not a valid DNS name")))?;
        let san = SanType::DnsName(ia5);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    sans.extend(req.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let kp = KeyPair::generate().map_err(rcgen_err)?;
    let cert = params.signed_by(&kp, &ca_cert, &ca_kp).map_err(rcgen_err)?;
    write_file(&key, &kp.serialize_pem(), true, force)?;
    write_file(&crt, &cert.pem(), false, force)?;
    Ok(vec![crt, key])
}

/// Helpers shared by tests of several modules
#[cfg(test)]
pub(crate) mod tests_support {
    use std::path::PathBuf;

    /// A fresh, empty directory under the system temp dir, unique per process and thread
    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "quictun-test-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::temp_dir;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ca_and_peer_round_trip() {
        let dir = temp_dir("cert");
        let written = generate_ca(&dir, false).unwrap();
        assert_eq!(written.len(), 2);
        let mode = std::fs::metadata(dir.join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            generate_ca(&dir, false),
            Err(CertError::Exists(_))
        ));
        let req = PeerCertRequest {
            name: "server".into(),
            dns: vec!["server".into(), "vpn.example".into()],
            ips: vec!["198.18.0.1".parse().unwrap()],
        };
        generate_peer(&dir, &dir, &req, false).unwrap();
        let e = generate_peer(&dir, &dir, &req, false).unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        generate_peer(&dir, &dir, &req, true).unwrap();
        // The server maps a client certificate to its [[peer]] by this name
        let der = load_certs("t", &dir.join("server.crt")).unwrap();
        assert_eq!(common_name(&der[0]).as_deref(), Some("server"));
        assert_eq!(common_name(b"\x30\x03\x02\x01\x00"), None);
        let mode = std::fs::metadata(dir.join("server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let tls = TlsConfig {
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            ca: Some(dir.join("ca.crt")),
            pins: vec![],
        };
        let m = TlsMaterial::load(&tls).unwrap();
        assert_eq!(m.chain.len(), 1);
        assert_eq!(m.roots.as_ref().unwrap().len(), 1);

        // the chain verifies against the CA with webpki
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(m.roots.clone().unwrap()),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        verifier
            .verify_client_cert(&m.chain[0], &[], rustls_pki_types::UnixTime::now())
            .unwrap();

        // pins: from the cert and from the key agree
        let from_cert = fingerprint_file(&dir.join("server.crt")).unwrap();
        let from_key = fingerprint_file(&dir.join("server.key")).unwrap();
        assert_eq!(from_cert, from_key);
        assert_eq!(m.own_pin(), Some(from_cert));
        let text = from_cert.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 71);
        assert_eq!(text.parse::<SpkiPin>(), Ok(from_cert));

        // swapped key is caught
        generate_peer(
            &dir,
            &dir,
            &PeerCertRequest {
                name: "laptop".into(),
                ..Default::default()
            },
            false,
        )
        .unwrap();
        let swapped = TlsConfig {
            key: dir.join("laptop.key"),
            ..tls.clone()
        };
        assert!(matches!(
            TlsMaterial::load(&swapped),
            Err(CertError::KeyMismatch { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_line_load_errors() {
        let dir = temp_dir("certerr");
        std::fs::write(dir.join("x.key"), "not a key").unwrap();
        let e = load_private_key("tls.key", &dir.join("x.key")).unwrap_err();
        assert!(e.to_string().starts_with("tls.key: "), "{e}");
        assert!(e.to_string().contains(
            "holds no private key (expected a PEM PKCS#8 key, as written by quictun cert)"
        ));
        let e = load_certs("tls.cert", &dir.join("missing.crt")).unwrap_err();
        assert!(e.to_string().contains("No such file or directory"), "{e}");
        assert!(!e.to_string().contains('\n'));
        let e = load_certs("tls.cert", &dir.join("x.key")).unwrap_err();
        assert!(matches!(e, CertError::NoCert { .. }));
        // peer certificate without a CA
        let e = generate_peer(
            &dir,
            &dir,
            &PeerCertRequest {
                name: "a".into(),
                ..Default::default()
            },
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("--ca"), "{e}");
        let e = generate_peer(
            &dir,
            &dir,
            &PeerCertRequest {
                name: "../x".into(),
                ..Default::default()
            },
            false,
        )
        .unwrap_err();
        assert!(matches!(e, CertError::Invalid(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pin_parsing() {
        assert!("sha256:00".parse::<SpkiPin>().is_err());
        assert!("md5:".parse::<SpkiPin>().is_err());
        let p = SpkiPin([0xab; 32]);
        assert_eq!(p.to_string().parse::<SpkiPin>(), Ok(p));
        assert!(SpkiPin::of_cert(b"\x30\x03\x02\x01\x00").is_err());
    }
}
