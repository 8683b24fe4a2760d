//! media-core is lock-free: no `Mutex` or `RwLock` anywhere in it, so none can creep onto the
//! per-packet path. (Concurrency belongs to the callers: one worker owns a call.)

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_locks_in_media_core() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 5);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for lock in ["Mutex", "RwLock"] {
                assert!(!code.contains(lock), "{}:{}: {line}", f.display(), i + 1);
            }
        }
    }
}
