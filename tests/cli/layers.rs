//! The crate is a one-way stack: each top-level module uses only the modules below it in
//! [`LAYERS`] (see ARCHITECTURE.md). This reads every `crate::` path in `src/` and fails on
//! one that runs up the stack, naming the file and both modules.

use std::path::Path;

/// The modules of `src/`, lowest first. A module may use those on earlier lines; modules on
/// one line do not use each other.
const LAYERS: &[&[&str]] = &[
    &["error", "bail_input", "clock"],
    &["device"],
    &["model"],
    &["config"],
    &["data", "flows"],
    &["eval"],
    &["checkpoint"],
    &["score"],
    &["explain"],
    &["alerts"],
    &["stream"],
    &["train"],
    &["log"],
    &["report", "hub"],
    &["tune"],
    &["serve"],
    &["cli"],
];

fn level(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a file of `src/` belongs to (`src/data/read.rs` → `data`).
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().unwrap().as_os_str();
    let first = first.to_str().unwrap();
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

/// The top-level modules a source text names through `crate::`: `crate::data::read`, and each
/// item of a group, `crate::{device, train}`.
fn used_modules(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut used = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            used.extend(group.split(',').map(|item| ident(item.trim())));
        } else {
            used.push(ident(rest));
        }
    }
    used.retain(|m| !m.is_empty());
    used
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = module_of(relative);
        if module == "lib" || module == "main" {
            continue;
        }
        let own = level(&module).unwrap_or_else(|| {
            panic!(
                "src/{}: module '{module}' is in no layer of LAYERS",
                relative.display()
            )
        });
        let text = std::fs::read_to_string(file).unwrap();
        for used in used_modules(&text) {
            let Some(theirs) = level(&used) else {
                panic!(
                    "src/{}: crate::{used} is in no layer of LAYERS",
                    relative.display()
                );
            };
            if used != module && theirs >= own {
                upward.push(format!("src/{} ({module}) uses {used}", relative.display()));
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "imports that run up the stack:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_import_reader_sees_paths_and_groups() {
    let text = "use crate::data::read;\nuse crate::{device, train};\nx = crate::clock::utc(1);";
    assert_eq!(used_modules(text), ["data", "device", "train", "clock"]);
}
