//! Checks what lints cannot (STYLE.md §9): every Rust file opens with a `//!` paragraph,
//! and no test is ignored or expected to panic.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if !path.ends_with("target") {
                rust_files(&path, found);
            }
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

fn workspace_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for dir in [
        "src",
        "log/src",
        "log/tests",
        "replay/src",
        "replay/tests",
        "tests",
        "fuzz/fuzz_targets",
    ] {
        rust_files(&root.join(dir), &mut found);
    }
    assert!(
        found.len() > 50,
        "the walk found too few files: {}",
        found.len()
    );
    found
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let missing: Vec<PathBuf> = workspace_files()
        .into_iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let first = text
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or_default();
            !first.starts_with("//!")
        })
        .collect();
    assert!(missing.is_empty(), "files without a //! head: {missing:#?}");
}

#[test]
fn no_test_is_ignored_or_expected_to_panic() {
    let forbidden = [concat!("#[", "ignore"), concat!("#[", "should_panic")];
    let offenders: Vec<String> = workspace_files()
        .into_iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            forbidden
                .iter()
                .filter(|attribute| text.contains(*attribute))
                .map(|attribute| format!("{}: {attribute}", path.display()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(offenders.is_empty(), "{offenders:#?}");
}
