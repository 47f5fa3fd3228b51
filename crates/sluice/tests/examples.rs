//! Every config in `examples/` (and the benchmark's) parses and validates,
//! and builds a runtime snapshot; the quickstart uses only the offline mock
//! provider.

use sluice::config::raw::ProviderKind;

fn examples() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    v.sort();
    // The benchmark's configs too (their ${BENCH_*} have defaults).
    v.push(dir.join("../bench/sluice-bench.yaml"));
    v.push(dir.join("../bench/sluice-policies.yaml"));
    v.push(dir.join("../bench/sluice-request-log.yaml"));
    v
}

#[test]
fn every_example_is_valid() {
    let files = examples();
    assert!(
        files.len() >= 2,
        "examples/ should hold the quickstart and a provider example"
    );
    for f in files {
        let cfg = sluice::config::load_file(&f)
            .unwrap_or_else(|e| panic!("{} is invalid:\n{e}", f.display()));
        sluice::snapshot::Snapshot::build(&cfg, 1)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn quickstart_is_offline() {
    let f = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.yaml");
    let cfg = sluice::config::load_file(&f).unwrap();
    assert!(!cfg.providers.is_empty());
    assert!(cfg.providers.values().all(|p| p.kind == ProviderKind::Mock));
}
