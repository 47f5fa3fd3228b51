//! Replays the cargo-fuzz seed corpus (`fuzz/corpus/<target>/*`) through the
//! same entry points the fuzz targets call, so every `cargo test` checks that
//! none of them panics on the seeds (and on every truncation of each seed).

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        f(&data);
        for cut in (0..data.len()).step_by(13) {
            f(&data[..cut]);
        }
        n += 1;
    }
    assert!(n >= 3, "corpus of {target} has only {n} seeds");
}

#[test]
fn sse_corpus() {
    replay("sse", sluice_providers::fuzzing::sse);
}

#[test]
fn openai_request_corpus() {
    replay("openai_request", sluice_providers::fuzzing::openai_request);
}

#[test]
fn anthropic_request_corpus() {
    replay(
        "anthropic_request",
        sluice_providers::fuzzing::anthropic_request,
    );
}

#[test]
fn stream_decoders_corpus() {
    replay(
        "stream_decoders",
        sluice_providers::fuzzing::stream_decoders,
    );
}
