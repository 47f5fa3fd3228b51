//! Fuzz target `stream_decoders`: see `sluice_providers::fuzzing::stream_decoders`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_providers::fuzzing::stream_decoders(data));
