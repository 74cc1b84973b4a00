//! Replays every committed input of every fuzz target (`fuzz/corpus/<target>/`) through the
//! target's checks: the short pass of each target that every test run makes. Fuzzing itself
//! is `scripts/fuzz SECONDS`.

use std::path::PathBuf;

#[test]
fn every_target_passes_on_its_corpus() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (name, target) in thisthat_fuzz::TARGETS {
        let dir = corpus.join(name);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{name} has a corpus");
        for input in inputs {
            let data = std::fs::read(&input).expect("read an input");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name} failed on {}", input.display());
        }
    }
}
