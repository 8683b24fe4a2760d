//! The stable-Rust replay of the committed fuzz corpora, shared by every crate's
//! `tests/fuzz_corpus.rs`: each input that ever crashed or widened coverage keeps being fed to
//! its target's entry point by `cargo test`, without a nightly toolchain.

use std::path::Path;

/// Feeds every file of `<manifest_dir>/../fuzz/corpus/<target>/` to `f`; panics (a test
/// failure) when the corpus is missing or empty, so a renamed target cannot pass silently.
pub fn replay(manifest_dir: &str, target: &str, f: impl Fn(&[u8])) {
    let dir = Path::new(manifest_dir).join("../fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        if path.is_file() {
            f(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
            n += 1;
        }
    }
    assert!(n > 0, "{}: empty corpus", dir.display());
}
