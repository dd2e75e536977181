//! cargo-fuzz target: see `quic_stack::fuzzing::packet_header` for the invariants checked
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quic_stack::fuzzing::packet_header(data);
});
