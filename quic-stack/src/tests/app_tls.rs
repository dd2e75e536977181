//! The application's TLS for the unit tests: the driver shared with the integration tests
//! (tests/common/app_tls.rs) over the crate's own paths, and the server config it runs on

use super::util::ALPN;

/// The stack as the shared driver names it
mod stack {
    pub(crate) use crate::connection::Connection;
    pub(crate) use crate::crypto::external::Direction;
    pub(crate) use crate::crypto::Suite;
    pub(crate) use crate::shared::{Side, SpaceId};
}

#[path = "../../tests/common/app_tls.rs"]
mod driver;

pub(super) use driver::{app_client, app_server, AppTls};

/// A server TLS config for the application (one per test: its session cache resumes clients)
pub(super) fn server_tls_config(
    cert_key: &(
        rustls_pki_types::CertificateDer<'static>,
        rustls_pki_types::PrivateKeyDer<'static>,
    ),
    early_data: bool,
) -> rustls::ServerConfig {
    let (cert, key) = (cert_key.0.clone(), cert_key.1.clone_key());
    crate::tls::server_config(vec![cert], key, vec![ALPN.to_vec()], None, early_data)
        .expect("server config")
}
