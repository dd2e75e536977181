//! quic-stack: a userspace QUIC implementation
//!
//! The core is sans-IO: it never touches a socket, a clock or a thread. Time (`now`) is passed
//! into every input and randomness comes from a seeded RNG handed in by the caller.
//!
//! The API has four kinds of call:
//! - inputs: `Endpoint::handle_datagram(now, meta, bytes)`, `handle_timeout(now)`;
//! - application commands: open/write/finish/reset streams, read, `send_datagram`, `close`;
//! - outputs: `poll_transmit(now, buf)`, `poll_timeout()`, `poll_event()`;
//! - getters: stats, RTT, congestion window, transport parameters.
//!
//! After any input or command, drain `poll_event`, then `poll_transmit` until it returns
//! `None`, then arm a timer for `poll_timeout`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cc;
pub mod coding;
pub mod config;
pub mod connection;
pub mod crypto;
pub mod datagram;
#[cfg(feature = "tokio")]
pub mod driver;
pub mod endpoint;
pub mod error;
pub mod flow;
pub mod frame;
pub mod fuzzing;
pub mod packet;
pub mod qlog;
pub mod range_set;
pub mod recovery;
mod shared;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod sockapi;
pub mod stream;
#[cfg(test)]
mod tests;
pub mod tls;
pub mod transport_params;
pub mod varint;

pub use crate::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
pub use crate::connection::{Connection, ConnectionError, ConnectionStats, Event, MigrateError};
pub use crate::endpoint::{ConnectError, ConnectionHandle, Endpoint};
pub use crate::error::{TransportError, TransportErrorCode};
pub use crate::shared::{
    ConnectionId, Dir, EcnCodepoint, RecvMeta, Side, SpaceId, StreamId, Transmit,
};
pub use crate::varint::VarInt;
