//! Thin tokio driver: UDP sockets with GSO/GRO, one task per endpoint, async handles
//!
//! All protocol policy lives in the sans-IO core; this module only moves datagrams between the
//! socket and [`crate::endpoint::Endpoint`], arms the timer, and wakes the handles.

mod endpoint;
pub mod socket;

pub use endpoint::{Connection, DatagramError, Endpoint, RecvStream, SendStream, StreamError};
