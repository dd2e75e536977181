//! Command-line interface definition (clap derive); `main.rs` executes it

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Process exit codes
pub mod exit {
    /// Configuration or certificate input is wrong
    pub const CONFIG: i32 = 1;
    /// Bad command line (clap's own code)
    pub const USAGE: i32 = 2;
    /// Permission, system or runtime failure (also: feature not wired yet)
    pub const SYSTEM: i32 = 3;
}

/// quictun: an IP tunnel over QUIC (TUN device, datagrams or streams, roaming, mTLS)
#[derive(Debug, Parser)]
#[command(name = "quictun", version, propagate_version = true)]
pub struct Cli {
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring the tunnel up from a configuration file
    Up(UpArgs),
    /// Show peers, traffic, RTT and drops of a running tunnel
    Status(StatusArgs),
    /// Create a CA and peer certificates, or print a key's pin
    Cert(CertArgs),
    /// Run a server and a client in network namespaces to try quictun on one machine
    Demo,
    /// Move a running client's connection to a new local address
    Migrate(MigrateArgs),
    /// Serve QUIC sockets (SOL_QUIC) to local applications over abstract Unix sockets
    Sockd(SockdArgs),
}

/// `quictun sockd` (the service name comes from QUICTUN_SOCKD, as for the library)
#[derive(Debug, Args)]
pub struct SockdArgs {
    /// QUIC sockets one uid may hold open at once
    #[arg(long, default_value_t = 1024)]
    pub max_sockets: usize,
    /// Bytes queued per socket for the application before the service stops reading
    #[arg(long, default_value_t = 4 << 20)]
    pub rcvbuf: usize,
}

/// `quictun up`
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Configuration file (TOML); QUICTUN_* variables override keys, e.g. QUICTUN_INTERFACE__MTU=1400
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Only validate the configuration and certificates, then exit
    #[arg(long)]
    pub check: bool,
}

/// Which daemon to talk to
#[derive(Debug, Args)]
pub struct ControlTarget {
    /// Interface of the tunnel (control socket /run/quictun/IFACE.sock)
    #[arg(short, long, value_name = "IFACE", default_value = "qt0")]
    pub interface: String,
    /// Control socket path (overrides --interface)
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl ControlTarget {
    /// The socket to connect to
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| crate::control::default_socket_path(&self.interface))
    }
}

/// `quictun status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Daemon to ask
    #[command(flatten)]
    pub target: ControlTarget,
}

/// `quictun cert`
#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("what").required(true).args(["ca", "name", "fingerprint"])),
    after_help = "Examples:\n  quictun cert --out /etc/quictun --ca\n  quictun cert --out /etc/quictun --name server --dns server --ip 198.18.0.1\n  quictun cert --out /etc/quictun --name laptop\n  quictun cert --fingerprint /etc/quictun/server.crt"
)]
pub struct CertArgs {
    /// Directory to write to (created if missing)
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Create the CA (ca.crt, ca.key)
    #[arg(long)]
    pub ca: bool,
    /// Create a peer certificate NAME.crt / NAME.key signed by the CA
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Extra DNS name for the peer certificate (repeatable)
    #[arg(long, value_name = "DNS", requires = "name")]
    pub dns: Vec<String>,
    /// IP address for the peer certificate (repeatable)
    #[arg(long, value_name = "IP", requires = "name")]
    pub ip: Vec<IpAddr>,
    /// Directory holding ca.crt and ca.key (default: --out)
    #[arg(long, value_name = "DIR", requires = "name")]
    pub ca_dir: Option<PathBuf>,
    /// Overwrite existing files
    #[arg(long)]
    pub force: bool,
    /// Print the SPKI SHA-256 pin of a certificate or key file (for tls.pin)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ca", "name"])]
    pub fingerprint: Option<PathBuf>,
}

/// `quictun migrate`
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// New local address to move the connection to
    #[arg(long, value_name = "ADDR")]
    pub to: IpAddr,
    /// Daemon to steer
    #[command(flatten)]
    pub target: ControlTarget,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_commands() {
        let c = Cli::try_parse_from(["quictun", "up", "-c", "x.toml"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Up(UpArgs { check: false, .. })
        ));
        let c = Cli::try_parse_from(["quictun", "status", "--json", "-i", "qt1"]).unwrap();
        match c.command {
            Command::Status(s) => {
                assert!(s.json);
                assert_eq!(
                    s.target.socket_path(),
                    PathBuf::from("/run/quictun/qt1.sock")
                );
            }
            _ => panic!(),
        }
        let c = Cli::try_parse_from([
            "quictun",
            "cert",
            "--out",
            "d",
            "--name",
            "server",
            "--dns",
            "server",
            "--ip",
            "198.18.0.1",
        ])
        .unwrap();
        match c.command {
            Command::Cert(a) => {
                assert_eq!(a.name.as_deref(), Some("server"));
                assert_eq!(a.ip, vec!["198.18.0.1".parse::<IpAddr>().unwrap()]);
            }
            _ => panic!(),
        }
        assert!(Cli::try_parse_from(["quictun", "cert", "--out", "d"]).is_err());
        assert!(Cli::try_parse_from(["quictun", "cert", "--ca", "--fingerprint", "f"]).is_err());
        assert!(Cli::try_parse_from(["quictun", "migrate", "--to", "nope"]).is_err());
        assert!(Cli::try_parse_from(["quictun", "migrate", "--to", "198.18.1.2"]).is_ok());
        assert!(Cli::try_parse_from(["quictun", "demo"]).is_ok());
        assert!(Cli::try_parse_from(["quictun", "sockd"]).is_ok());
        assert!(Cli::try_parse_from(["quictun", "sockd", "--max-sockets", "2"]).is_ok());
    }
}
