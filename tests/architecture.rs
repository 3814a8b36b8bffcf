//! The shape ARCHITECTURE.md promises, checked on the source: no import circle
//! between the library's top-level modules, the layers import only downwards,
//! and no file grows past ~600 lines without saying why at its top.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each module and the modules it may import. Test code is not counted.
const LAYERS: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("clock", &["domain"]),
    ("pipeline", &["domain"]),
    ("policy", &["domain"]),
    ("wire", &["domain", "pipeline"]),
    ("detect", &["domain", "policy"]),
    ("metrics", &["pipeline"]),
    ("registry", &["domain", "config"]),
    ("store", &["domain", "pipeline", "metrics", "config"]),
    ("config", &["domain", "policy", "wire", "detect"]),
    ("thresholds", &["config", "domain", "policy", "store"]),
    (
        "notify",
        &["domain", "config", "detect", "store", "clock", "metrics"],
    ),
    (
        "alert",
        &[
            "domain",
            "config",
            "detect",
            "notify",
            "store",
            "clock",
            "pipeline",
            "policy",
            "thresholds",
        ],
    ),
    (
        "actions",
        &[
            "domain",
            "config",
            "pipeline",
            "policy",
            "registry",
            "store",
            "wire",
            "thresholds",
        ],
    ),
    ("evaluate", &[]),
    (
        "ingest",
        &["domain", "clock", "pipeline", "wire", "metrics", "config"],
    ),
    ("report", &["config", "domain", "store"]),
    (
        "watch",
        &["clock", "config", "domain", "metrics", "notify", "store"],
    ),
    (
        "http",
        &[
            "actions",
            "alert",
            "clock",
            "config",
            "detect",
            "domain",
            "ingest",
            "registry",
            "metrics",
            "notify",
            "pipeline",
            "policy",
            "report",
            "store",
            "thresholds",
            "wire",
        ],
    ),
    (
        "app",
        &[
            "alert", "clock", "config", "detect", "http", "ingest", "metrics", "notify",
            "pipeline", "store", "watch",
        ],
    ),
    (
        "demo",
        &[
            "actions", "app", "clock", "config", "domain", "registry", "store",
        ],
    ),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`src/store/engine.rs` → store).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main" | "cli")).then(|| name.to_string())
}

/// The `crate::X` modules a file's non-test code names.
fn imports(text: &str) -> BTreeSet<String> {
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or("")
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (index, _) in code.match_indices("crate::") {
        let rest = &code[index + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(imports(&text).into_iter().filter(|m| *m != module));
    }
    graph
}

#[test]
fn modules_import_only_the_layers_below_them() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = LAYERS
        .iter()
        .map(|(module, may)| (*module, may.iter().copied().collect()))
        .collect();
    let mut problems = Vec::new();
    for (module, imports) in graph() {
        let Some(may) = allowed.get(module.as_str()) else {
            problems.push(format!("{module} is not in the layer list"));
            continue;
        };
        for import in imports {
            if !may.contains(import.as_str()) {
                problems.push(format!("{module} imports {import}"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn there_is_no_import_circle() {
    let graph = graph();
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut circle = path[start..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("import circle: {}", circle.join(" → "));
        }
    }
}

#[test]
fn long_files_say_why_at_their_top() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut long = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = text.lines().count();
        let head: String = text.lines().take(40).collect::<Vec<_>>().join("\n");
        if lines > 620 && !head.contains("on purpose") {
            long.push(format!("{} ({lines} lines)", file.display()));
        }
    }
    assert!(long.is_empty(), "{long:#?}");
}
