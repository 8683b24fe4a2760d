//! The live media plane takes no lock: no `Mutex` or `RwLock` in any of its modules, so
//! none can creep onto the per-packet path (one worker owns each call; queues are
//! crossbeam's lock-free channels). media-core has the same check (tests/lock_free.rs).

use std::path::Path;

#[test]
fn no_locks_in_the_live_plane() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/live");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for lock in ["Mutex", "RwLock", "parking_lot", "Condvar"] {
                assert!(!code.contains(lock), "{}:{}: {line}", path.display(), i + 1);
            }
        }
    }
    assert!(files >= 4, "{}: live modules not found", dir.display());
}
