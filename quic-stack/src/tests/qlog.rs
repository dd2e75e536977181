//! qlog traces from the core (JSON-SEQ through a sink)

use std::io;
use std::sync::{Arc, Mutex};

use super::util::{payload, Harness, Setup};
use crate::qlog::QlogWriter;
use crate::shared::{Dir, Side};

/// A writer into a shared buffer
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn qlog_trace_of_a_transfer_with_migration() {
    let mut h = Harness::new(Setup::default());
    let out = Shared::default();
    let now = h.now();
    let odcid = h.client_conn().original_dcid();
    let writer = QlogWriter::new(out.clone(), Side::Client, odcid, "test");
    h.client_conn().set_qlog(now, Box::new(writer));
    h.handshake();
    h.pair.drive().expect("settle");
    let new = "198.18.3.3:3333".parse().expect("address");
    let c = h.pair.client;
    h.pair.net.set_addr(c, new);
    let now = h.now();
    h.client_conn().migrate(now, Some(new)).expect("migrate");
    let data = payload(100_000, 6);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    let now = h.now();
    h.client_conn().close(now, 0, b"");
    h.pair.drive().expect("settle");
    let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf-8");
    let records: Vec<&str> = text.split('\u{1e}').filter(|r| !r.is_empty()).collect();
    assert!(records.len() > 50, "{} records", records.len());
    assert!(records
        .iter()
        .all(|r| r.starts_with('{') && r.ends_with("}\n")));
    for name in [
        "transport:packet_sent",
        "transport:packet_received",
        "recovery:metrics_updated",
        "connectivity:path_updated",
        "connectivity:path_validation",
        "connectivity:connection_closed",
    ] {
        assert!(
            records.iter().any(|r| r.contains(name)),
            "no {name} event in the trace"
        );
    }
}
