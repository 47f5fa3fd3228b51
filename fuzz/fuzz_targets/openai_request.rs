//! Fuzz target `openai_request`: see `sluice_providers::fuzzing::openai_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_providers::fuzzing::openai_request(data));
