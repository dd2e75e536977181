//! rustls configurations for tunnel peers: mutual TLS 1.3, peers accepted by CA or SPKI pin
//!
//! A peer passes if its end-entity certificate's SPKI pin is in `tls.pin`, or else if its chain
//! verifies against `tls.ca` (for a server: also for the peer's name). Pins skip name checks on
//! purpose: a pin names one key, which is stronger than any name.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::cert::{CertError, SpkiPin, TlsMaterial};

/// ALPN protocol id of the tunnel
pub const ALPN: &[u8] = b"quictun/1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(e: impl std::fmt::Display) -> CertError {
    CertError::Invalid(format!("tls setup: {e}"))
}

fn pinned(pins: &[SpkiPin], cert: &CertificateDer<'_>) -> bool {
    !pins.is_empty() && SpkiPin::of_cert(cert).is_ok_and(|p| pins.contains(&p))
}

fn unknown_peer() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// The handshake signature check both verifiers share: pins and CAs decide who the peer is,
/// the provider's algorithms whether it holds the certificate's key
fn handshake_signature(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let algorithms = &provider.signature_verification_algorithms;
    if tls13 {
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    } else {
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }
}

/// Verifies a server's certificate by pin, then CA
#[derive(Debug)]
struct PeerServerVerifier {
    pins: Vec<SpkiPin>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if pinned(&self.pins, end_entity) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(unknown_peer()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.provider, message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.provider, message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Verifies a client's certificate by pin, then CA; a certificate is always required
#[derive(Debug)]
struct PeerClientVerifier {
    pins: Vec<SpkiPin>,
    webpki: Option<Arc<dyn ClientCertVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for PeerClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.as_ref().map_or(&[], |v| v.root_hint_subjects())
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if pinned(&self.pins, end_entity) {
            return Ok(ClientCertVerified::assertion());
        }
        match &self.webpki {
            Some(v) => v.verify_client_cert(end_entity, intermediates, now),
            None => Err(unknown_peer()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.provider, message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.provider, message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl TlsMaterial {
    /// Server-side rustls configuration: TLS 1.3 only, client certificate required, ALPN
    /// [`ALPN`]
    pub fn server_config(&self) -> Result<rustls::ServerConfig, CertError> {
        let provider = provider();
        let webpki = match &self.roots {
            Some(roots) => Some(
                WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots.clone()),
                    provider.clone(),
                )
                .build()
                .map_err(tls_err)?,
            ),
            None => None,
        };
        let verifier = Arc::new(PeerClientVerifier {
            pins: self.pins.clone(),
            webpki,
            provider: provider.clone(),
        });
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(tls_err)?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        // 0-RTT data could be replayed; a tunnel carries arbitrary traffic, so never accept it
        cfg.max_early_data_size = 0;
        Ok(cfg)
    }

    /// Client-side rustls configuration: TLS 1.3 only, presents our certificate, ALPN [`ALPN`].
    /// Connect with the peer's configured name as server name (it is in the peer's certificate
    /// as made by `quictun cert`).
    pub fn client_config(&self) -> Result<rustls::ClientConfig, CertError> {
        let provider = provider();
        let webpki = match &self.roots {
            Some(roots) => Some(
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots.clone()),
                    provider.clone(),
                )
                .build()
                .map_err(tls_err)?,
            ),
            None => None,
        };
        let verifier = Arc::new(PeerServerVerifier {
            pins: self.pins.clone(),
            webpki,
            provider: provider.clone(),
        });
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(tls_err)?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        cfg.enable_early_data = false;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::tests_support::temp_dir;
    use crate::cert::{generate_ca, generate_peer, PeerCertRequest};
    use crate::config::TlsConfig;
    use std::path::Path;

    fn material(dir: &Path, name: &str, ca: bool, pins: Vec<SpkiPin>) -> TlsMaterial {
        TlsMaterial::load(&TlsConfig {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            ca: ca.then(|| dir.join("ca.crt")),
            pins,
        })
        .unwrap()
    }

    /// Run a TLS handshake in memory; Ok when both sides complete
    fn handshake(
        client: &TlsMaterial,
        server: &TlsMaterial,
        name: &str,
    ) -> Result<(), rustls::Error> {
        let mut c = rustls::ClientConnection::new(
            Arc::new(client.client_config().unwrap()),
            ServerName::try_from(name.to_string()).unwrap(),
        )?;
        let mut s = rustls::ServerConnection::new(Arc::new(server.server_config().unwrap()))?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            if !buf.is_empty() {
                s.read_tls(&mut &buf[..]).unwrap();
                s.process_new_packets()?;
            }
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            if !buf.is_empty() {
                c.read_tls(&mut &buf[..]).unwrap();
                c.process_new_packets()?;
            }
            if !c.is_handshaking() && !s.is_handshaking() {
                assert_eq!(c.alpn_protocol(), Some(ALPN));
                return Ok(());
            }
        }
        Err(rustls::Error::General("handshake did not finish".into()))
    }

    #[test]
    fn mutual_tls_by_ca_and_by_pin() {
        let pki = temp_dir("tls");
        generate_ca(&pki, false).unwrap();
        for n in ["server", "laptop"] {
            let req = PeerCertRequest {
                name: n.into(),
                ..Default::default()
            };
            generate_peer(&pki, &pki, &req, false).unwrap();
        }
        // an unrelated CA and peer
        let other = temp_dir("tls-other");
        generate_ca(&other, false).unwrap();
        generate_peer(
            &other,
            &other,
            &PeerCertRequest {
                name: "mallory".into(),
                ..Default::default()
            },
            false,
        )
        .unwrap();

        let server = material(&pki, "server", true, vec![]);
        let laptop = material(&pki, "laptop", true, vec![]);
        handshake(&laptop, &server, "server").unwrap();
        // wrong name for the server certificate
        assert!(handshake(&laptop, &server, "elsewhere").is_err());
        // a client from another CA is refused
        let mallory = material(&other, "mallory", false, vec![server.own_pin().unwrap()]);
        assert!(handshake(&mallory, &server, "server").is_err());

        // pins only, both ways (no CA at all)
        let server_pinned = material(&pki, "server", false, vec![laptop.own_pin().unwrap()]);
        let laptop_pinned = material(&pki, "laptop", false, vec![server.own_pin().unwrap()]);
        handshake(&laptop_pinned, &server_pinned, "any-name").unwrap();
        // wrong pin
        let laptop_wrong = material(&pki, "laptop", false, vec![laptop.own_pin().unwrap()]);
        assert!(handshake(&laptop_wrong, &server_pinned, "server").is_err());
        let _ = std::fs::remove_dir_all(&pki);
        let _ = std::fs::remove_dir_all(&other);
    }
}
