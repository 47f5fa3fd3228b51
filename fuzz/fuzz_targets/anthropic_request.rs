//! Fuzz target `anthropic_request`: see `sluice_providers::fuzzing::anthropic_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_providers::fuzzing::anthropic_request(data));
