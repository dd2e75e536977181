//! Bulk transfer over loopback: our stack and quinn side by side in one run
//!
//! Each stack moves the same payload from a client to a server on one bidirectional stream, in
//! the same process and runtime configuration, and the run prints throughput, CPU time (user +
//! system, from getrusage) and the ratios. Run with:
//!
//! ```text
//! cargo bench -p quic-stack --bench bulk            # 256 MiB per stack, 3 rounds
//! BULK_MIB=64 BULK_ROUNDS=1 cargo bench -p quic-stack --bench bulk
//! BULK_STACK=ours cargo bench -p quic-stack --bench bulk   # one stack only, for profiling
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use quic_stack::config::{ClientConfig, EndpointConfig, ServerConfig};
use quic_stack::driver;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const ALPN: &[u8] = b"bulk";
const CHUNK: usize = 64 * 1024;

struct Cert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

struct Sample {
    wall: Duration,
    cpu: Duration,
}

impl Sample {
    fn gbit_per_s(&self, bytes: u64) -> f64 {
        bytes as f64 * 8.0 / self.wall.as_secs_f64() / 1e9
    }
    /// CPU cores kept busy per Gbit/s of goodput, in percent
    fn core_percent_per_gbit(&self, bytes: u64) -> f64 {
        let cores = self.cpu.as_secs_f64() / self.wall.as_secs_f64();
        cores * 100.0 / self.gbit_per_s(bytes)
    }
}

fn cpu_time() -> Duration {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let user = usage.user_time();
            let system = usage.system_time();
            Duration::new(user.tv_sec() as u64, user.tv_usec() as u32 * 1000)
                + Duration::new(system.tv_sec() as u64, system.tv_usec() as u32 * 1000)
        }
        Err(_) => Duration::ZERO,
    }
}

async fn measure<F: std::future::Future<Output = ()>>(f: F) -> Sample {
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    f.await;
    Sample {
        wall: t0.elapsed(),
        cpu: cpu_time() - cpu0,
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

async fn ours(cert: &Cert, bytes: u64) -> Sample {
    let server_crypto = quic_stack::tls::server_config(
        cert.chain.clone(),
        PrivateKeyDer::Pkcs8(cert.key.clone_key()),
        vec![ALPN.to_vec()],
        None,
        false,
    )
    .expect("server TLS");
    let server = driver::Endpoint::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        EndpointConfig::default(),
        Some(ServerConfig::new(Arc::new(server_crypto))),
    )
    .expect("bind server");
    let server_addr = server.local_addr();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.chain[0].clone()).expect("root");
    let client_crypto =
        quic_stack::tls::client_config(roots, vec![ALPN.to_vec()], None).expect("client TLS");
    let client = driver::Endpoint::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        EndpointConfig::default(),
        None,
    )
    .expect("bind client");

    let sink = tokio::spawn(async move {
        let conn = server.accept().await.expect("incoming");
        let (_send, mut recv) = conn.accept_bi().await.expect("stream");
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        while let Some(n) = recv.read(&mut buf).await.expect("read") {
            total += n as u64;
        }
        total
    });
    let conn = client
        .connect(
            ClientConfig::new(Arc::new(client_crypto)),
            server_addr,
            "localhost",
        )
        .expect("connect");
    conn.handshake().await.expect("handshake");
    let data = vec![0xabu8; CHUNK];
    let sample = measure(async {
        let (mut send, _recv) = conn.open_bi().await.expect("open");
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            send.write_all(&data[..n]).await.expect("write");
            left -= n as u64;
        }
        send.finish().expect("finish");
        let received = sink.await.expect("sink");
        assert_eq!(received, bytes);
    })
    .await;
    conn.close(0, b"");
    sample
}

async fn quinn(cert: &Cert, bytes: u64) -> Sample {
    let mut server_crypto = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_no_client_auth()
        .with_single_cert(
            cert.chain.clone(),
            PrivateKeyDer::Pkcs8(cert.key.clone_key()),
        )
        .expect("cert");
    server_crypto.alpn_protocols = vec![ALPN.to_vec()];
    let server_config = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(server_crypto).expect("quic"),
    ));
    let server =
        quinn::Endpoint::server(server_config, (Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
    let server_addr = server.local_addr().expect("addr");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.chain[0].clone()).expect("root");
    let mut client_crypto = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_crypto.alpn_protocols = vec![ALPN.to_vec()];
    let client_config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(client_crypto).expect("quic"),
    ));
    let client = quinn::Endpoint::client((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");

    let sink = tokio::spawn(async move {
        let conn = server.accept().await.expect("incoming").await.expect("hs");
        let (_send, mut recv) = conn.accept_bi().await.expect("stream");
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        while let Some(n) = recv.read(&mut buf).await.expect("read") {
            total += n as u64;
        }
        total
    });
    let conn = client
        .connect_with(client_config, server_addr, "localhost")
        .expect("connect")
        .await
        .expect("handshake");
    let data = vec![0xabu8; CHUNK];
    let sample = measure(async {
        let (mut send, _recv) = conn.open_bi().await.expect("open");
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            send.write_all(&data[..n]).await.expect("write");
            left -= n as u64;
        }
        send.finish().expect("finish");
        let received = sink.await.expect("sink");
        assert_eq!(received, bytes);
    })
    .await;
    conn.close(0u32.into(), b"");
    sample
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must stay quick.
    let benching = std::env::args().any(|a| a == "--bench");
    let mib = env_u64("BULK_MIB", if benching { 256 } else { 4 });
    let rounds = env_u64("BULK_ROUNDS", if benching { 3 } else { 1 });
    let bytes = mib * 1024 * 1024;
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let cert = Cert {
        chain: vec![certified.cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("bulk transfer over loopback, {mib} MiB per run, {rounds} rounds (best of)");
    let mut best_ours: Option<Sample> = None;
    let mut best_quinn: Option<Sample> = None;
    let only = std::env::var("BULK_STACK").unwrap_or_default();
    if only == "ours" || only == "quinn" {
        for round in 0..rounds {
            let sample = runtime.block_on(async {
                if only == "ours" {
                    ours(&cert, bytes).await
                } else {
                    quinn(&cert, bytes).await
                }
            });
            println!(
                "round {round}: {only} {:.2} Gbit/s ({:.0} core-%/Gbit)",
                sample.gbit_per_s(bytes),
                sample.core_percent_per_gbit(bytes)
            );
        }
        return;
    }
    for round in 0..rounds {
        // Alternate the order so neither stack always runs on a warmer machine.
        let (a, b) = runtime.block_on(async {
            if round % 2 == 0 {
                let a = ours(&cert, bytes).await;
                let b = quinn(&cert, bytes).await;
                (a, b)
            } else {
                let b = quinn(&cert, bytes).await;
                let a = ours(&cert, bytes).await;
                (a, b)
            }
        });
        println!(
            "round {round}: quic-stack {:.2} Gbit/s ({:.0} core-%/Gbit), quinn {:.2} Gbit/s ({:.0} core-%/Gbit)",
            a.gbit_per_s(bytes),
            a.core_percent_per_gbit(bytes),
            b.gbit_per_s(bytes),
            b.core_percent_per_gbit(bytes)
        );
        if best_ours.as_ref().is_none_or(|s| a.wall < s.wall) {
            best_ours = Some(a);
        }
        if best_quinn.as_ref().is_none_or(|s| b.wall < s.wall) {
            best_quinn = Some(b);
        }
    }
    if let (Some(a), Some(b)) = (best_ours, best_quinn) {
        println!(
            "quic-stack: {:.2} Gbit/s, CPU {:.2} s, {:.0} core-%/Gbit",
            a.gbit_per_s(bytes),
            a.cpu.as_secs_f64(),
            a.core_percent_per_gbit(bytes)
        );
        println!(
            "quinn:      {:.2} Gbit/s, CPU {:.2} s, {:.0} core-%/Gbit",
            b.gbit_per_s(bytes),
            b.cpu.as_secs_f64(),
            b.core_percent_per_gbit(bytes)
        );
        println!(
            "ratio quic-stack/quinn: throughput {:.2}x, CPU per byte {:.2}x",
            a.gbit_per_s(bytes) / b.gbit_per_s(bytes),
            a.cpu.as_secs_f64() / b.cpu.as_secs_f64()
        );
    }
}
