//! Where tests find `../shared/conformance`: other projects' real test cases, kept beside the
//! project's clone rather than in it.
//!
//! A clone alone has no `../shared`. Its tests that need those cases then skip, and each test
//! binary says so once on stderr, in one line naming the missing folder and why; the rest of the
//! suite runs as usual. Under `CI=true` the folder must be there: its absence fails the test that
//! needs it, so CI never passes by skipping.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The `shared/` folder beside the project root.
pub fn shared_root() -> PathBuf {
    // This crate sits at <root>/shared, so shared/ is two levels up.
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let parent = crate_dir.parent().and_then(Path::parent);
    parent.unwrap_or(crate_dir).join("shared")
}

/// `../shared/conformance`, or `None` (after the suite's one skip line) when a clone runs
/// without it. Panics under `CI=true` when it is missing.
pub fn dir() -> Option<PathBuf> {
    let dir = shared_root().join("conformance");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{} is missing: CI runs with shared/ beside the clone, so the conformance cases \
             must be there",
            dir.display()
        );
    }
    static SAID: Once = Once::new();
    SAID.call_once(|| {
        // Written to the stderr handle, not through eprintln!, so the test harness's output
        // capture does not swallow it.
        let _ = writeln!(
            std::io::stderr(),
            "skip: {}: the tests that read {} are skipped (it is absent: a clone without \
             shared/ beside it)",
            suite_name(),
            dir.display()
        );
    });
    None
}

/// The test binary's name without cargo's hash suffix.
fn suite_name() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}

/// `let dir = ferry_shared::conformance_or_skip!();` at the top of a test that needs
/// `../shared/conformance`: the folder, or an early return that skips the test.
#[macro_export]
macro_rules! conformance_or_skip {
    () => {
        match $crate::conformance::dir() {
            Some(dir) => dir,
            None => return,
        }
    };
}
