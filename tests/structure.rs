//! The shape of the code, checked: facts anyone can verify by reading the sources, kept true by
//! the suite instead of by review.
//!
//! - No import cycle between the files of a crate: a file's imports are the modules it names
//!   (`crate::m`, `super::m`, or `m::` in a crate root), and the graph they make has no cycle,
//!   direct or through other files. A cycle means two files that can only change together.
//! - No function over [`MAX_FN_LINES`] lines in the crates that hold the steps' logic.
//! - The catch-up loop's wiring (`catchup/src/run.rs`) stays under [`MAX_RUN_RS_LINES`] lines.
//!
//! Known violations are listed in `tests/structure_waivers.json`; a waiver whose violation is
//! gone fails the test too, so the list only shrinks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FN_LINES: usize = 150;
const MAX_RUN_RS_LINES: usize = 500;
/// Crates whose functions are held to [`MAX_FN_LINES`].
const FN_LIMITED: &[&str] = &["catchup/src", "loader/src", "dumper/src"];
/// Every source tree of the workspace, checked for import cycles.
const TREES: &[&str] = &[
    "catchup/src",
    "loader/src",
    "dumper/src",
    "shared/src",
    "src",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.rs` files below `dir`, as paths relative to the repository root.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root().join(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p.strip_prefix(root()).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The source without its test module (a trailing `#[cfg(test)] mod tests { .. }`): tests may
/// reach into any module without making the code a cycle.
fn without_tests(src: &str) -> &str {
    match src.find("#[cfg(test)]\nmod tests") {
        Some(i) => &src[..i],
        None => src,
    }
}

/// The source without its comment lines: a doc link to a module is not an import.
fn without_comments(src: &str) -> String {
    src.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A module path (`["parallel"]`, `["a", "b"]`; the crate root is `[]`) of a file of a tree.
fn module_path(tree: &str, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(tree).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        parts.pop();
    }
    parts
}

/// The longest module of `modules` that `path` (after `crate::`) starts with, or the root.
fn resolve(path: &[&str], modules: &BTreeMap<Vec<String>, PathBuf>) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .find(|p| modules.contains_key(p))
        .unwrap_or_default()
}

/// Every `prefix::a::b` path in `text`, as its segments after the prefix.
fn paths_after<'a>(text: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let mut segs = Vec::new();
        for s in rest.split("::") {
            let end = s
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(s.len());
            if end > 0 {
                segs.push(&s[..end]);
            }
            if end < s.len() || end == 0 {
                break;
            }
        }
        out.push(segs);
    }
    out
}

/// The import graph of one source tree: file -> files it names.
fn import_graph(tree: &str) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let files = rust_files(Path::new(tree));
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_path(tree, f), f.clone()))
        .collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let src = std::fs::read_to_string(root().join(file)).unwrap();
        let code = without_comments(without_tests(&src));
        let code = code.as_str();
        let me = module_path(tree, file);
        let mut targets = BTreeSet::new();
        for segs in paths_after(code, "crate::") {
            targets.insert(resolve(&segs, &modules));
        }
        if let Some((_, parent)) = me.split_last() {
            for segs in paths_after(code, "super::") {
                let full: Vec<&str> = parent.iter().map(String::as_str).chain(segs).collect();
                targets.insert(resolve(&full, &modules));
            }
        }
        // A crate root names its children without `crate::` (`use run::Config`, `run::go()`).
        if me.is_empty() {
            for child in modules.keys().filter(|m| m.len() == 1) {
                let name = format!("{}::", child[0]);
                if !paths_after(code, &name).is_empty() {
                    targets.insert(child.clone());
                }
            }
        }
        targets.remove(&me);
        let edges = targets.iter().map(|m| modules[m].clone()).collect();
        graph.insert(file.clone(), edges);
    }
    graph
}

/// The strongly connected components with more than one file (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<BTreeSet<PathBuf>> {
    struct State<'g> {
        graph: &'g BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'g PathBuf, usize>,
        low: BTreeMap<&'g PathBuf, usize>,
        stack: Vec<&'g PathBuf>,
        on_stack: BTreeSet<&'g PathBuf>,
        out: Vec<BTreeSet<PathBuf>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g PathBuf) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in &s.graph[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.insert(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// `(name, first line, lines)` of every function with a body in `src` (rustfmt layout: the
/// body ends at the first `}` line at the `fn` line's indentation).
fn functions(src: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(at) = fn_name_at(t) else { continue };
        let indent = &line[..line.len() - t.len()];
        // A declaration without a body ends in `;` before any `{`.
        let body = lines[i..]
            .iter()
            .position(|l| l.trim_end().ends_with('{') || l.trim_end().ends_with(';'));
        if body.is_none_or(|b| lines[i + b].trim_end().ends_with(';')) {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(len) = lines[i..].iter().position(|l| l.trim_end() == close) {
            out.push((at.to_string(), i + 1, len + 1));
        }
    }
    out
}

/// The name of the function a trimmed line declares, if it declares one.
fn fn_name_at(t: &str) -> Option<&str> {
    let mut rest = t;
    for q in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(q).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&rest[..end])
}

fn waivers() -> serde_json::Value {
    let p = root().join("tests/structure_waivers.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

fn waived(key: &str) -> BTreeSet<String> {
    waivers()[key]
        .as_array()
        .unwrap_or_else(|| panic!("structure_waivers.json: {key} is not a list"))
        .iter()
        .map(|v| v["what"].as_str().expect("waiver.what").to_string())
        .collect()
}

/// Found violations against the waivers: new ones and stale waivers both fail.
fn check(rule: &str, found: BTreeSet<String>) {
    let waived = waived(rule);
    let new: Vec<_> = found.difference(&waived).collect();
    let stale: Vec<_> = waived.difference(&found).collect();
    assert!(
        new.is_empty() && stale.is_empty(),
        "{rule}: new violations {new:#?}; stale waivers (fixed: remove them from \
         tests/structure_waivers.json) {stale:#?}"
    );
}

#[test]
fn no_import_cycles_between_files() {
    let mut found = BTreeSet::new();
    for tree in TREES {
        for comp in cycles(&import_graph(tree)) {
            let names: Vec<_> = comp.iter().map(|p| p.display().to_string()).collect();
            found.insert(names.join(" <-> "));
        }
    }
    check("import_cycles", found);
}

#[test]
fn no_function_over_the_line_limit() {
    let mut found = BTreeSet::new();
    for tree in FN_LIMITED {
        for file in rust_files(Path::new(tree)) {
            let src = std::fs::read_to_string(root().join(&file)).unwrap();
            for (name, _, len) in functions(&src) {
                if len > MAX_FN_LINES {
                    found.insert(format!("{}::{name}", file.display()));
                }
            }
        }
    }
    check("long_functions", found);
}

#[test]
fn the_catchup_loop_is_wiring() {
    let src = std::fs::read_to_string(root().join("catchup/src/run.rs")).unwrap();
    let mut found = BTreeSet::new();
    if src.lines().count() >= MAX_RUN_RS_LINES {
        found.insert("catchup/src/run.rs".to_string());
    }
    check("long_files", found);
}

#[test]
fn the_checks_see_what_they_check() {
    // A cycle, a long function and a short one, on text the checks must read right.
    let long: String = std::iter::repeat_n("    x();\n", MAX_FN_LINES).collect();
    let src = format!("pub async fn big() {{\n{long}}}\n\nfn small(\n    a: u8,\n) {{\n}}\n");
    let fns = functions(&src);
    assert_eq!(fns[0], ("big".to_string(), 1, MAX_FN_LINES + 2));
    assert_eq!(fns[1], ("small".to_string(), MAX_FN_LINES + 4, 4));
    assert!(functions("trait T {\n    fn f(&self);\n}\n").is_empty());
    let mut g = BTreeMap::new();
    let (a, b, c) = (PathBuf::from("a"), PathBuf::from("b"), PathBuf::from("c"));
    g.insert(a.clone(), BTreeSet::from([b.clone()]));
    g.insert(b.clone(), BTreeSet::from([c.clone()]));
    g.insert(c.clone(), BTreeSet::from([a.clone()]));
    assert_eq!(cycles(&g), vec![BTreeSet::from([a.clone(), b.clone(), c])]);
    g.insert(PathBuf::from("c"), BTreeSet::new());
    assert!(cycles(&g).is_empty());
    assert_eq!(
        paths_after(
            "use crate::parallel::{x}; crate::run::go(); xcrate::no",
            "crate::"
        ),
        vec![vec!["parallel"], vec!["run", "go"]]
    );
}
