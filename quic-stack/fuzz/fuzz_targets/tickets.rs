//! cargo-fuzz target: see `quic_stack::fuzzing::tickets` for the invariants checked
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quic_stack::fuzzing::tickets(data);
});
