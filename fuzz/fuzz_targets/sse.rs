//! Fuzz target `sse`: see `sluice_providers::fuzzing::sse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_providers::fuzzing::sse(data));
