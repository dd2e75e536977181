//! cargo-fuzz target: see `quic_stack::fuzzing::psk_file` for the invariants checked
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quic_stack::fuzzing::psk_file(data);
});
