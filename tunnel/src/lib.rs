//! quictun: a TUN-based QUIC tunnel
//!
//! The sans-IO core ([`router`], [`carriage`], [`allowed_ips`], [`ip`]) decides what happens to
//! each packet; [`daemon`] moves packets between a [`netdev::TunDevice`] and a
//! [`daemon::PacketLink`] and is the only part that touches devices. [`config`], [`cert`],
//! [`tls`], [`control`], [`metrics`] and [`cli`] are the operational surface.
#![forbid(unsafe_code)]

pub mod allowed_ips;
pub mod bypass;
pub mod carriage;
pub mod cert;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod ip;
pub mod link;
pub mod metrics;
pub mod mtu_auto;
pub mod router;
pub mod sockd;
pub mod tls;
pub mod up;
