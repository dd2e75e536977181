//! Local control socket
use std::path::PathBuf;

/// Default control socket path for interface `iface`
pub fn default_socket_path(iface: &str) -> PathBuf {
    PathBuf::from(format!("/run/quictun/{iface}.sock"))
}
