//! The shape of `src/`: modules form layers and a module uses only the layers below it (or a
//! neighbour of its own layer, without cycles); Delta and DataFusion stay inside `lake` and
//! `query`; no function runs much past 80 lines. Read from the source files themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::{all_files, repo};

/// Each library module's layer, bottom up (see `src/lib.rs`).
const LAYERS: &[(&str, u8)] = &[
    ("util", 0),
    ("normalise", 0),
    ("disclosure", 0),
    ("cron", 0),
    ("estimate", 1),
    ("config", 1),
    ("schema", 1),
    ("access", 1),
    ("audit", 1),
    ("source", 2),
    ("mapping", 2),
    ("validate", 2),
    ("pseudonym", 2),
    ("generate", 2),
    ("lake", 3),
    ("query", 4),
    ("schedule", 4),
    ("ingest", 5),
    ("extract", 5),
    ("app", 6),
    ("serve", 7),
];

/// The top-level module a source file belongs to.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let m = first.trim_end_matches(".rs").to_string();
    (m != "lib" && m != "cli").then_some(m)
}

/// The code of a file without its unit tests.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Modules named in `crate::a`, `crate::{a, b::c}` and `use crate::a::...`.
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

/// Module → the modules it uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = repo().join("src");
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in all_files(&src)
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "rs"))
    {
        let Some(m) = module_of(&src, f) else {
            continue;
        };
        let used = uses(&code(f));
        let e = g.entry(m.clone()).or_default();
        e.extend(used.into_iter().filter(|u| *u != m));
    }
    g
}

fn has_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            return Some(path[i..].to_vec());
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

#[test]
fn modules_use_only_the_layers_below_them_without_cycles() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let g = graph();
    for m in g.keys() {
        assert!(
            layer.contains_key(m.as_str()),
            "module {m} has no layer in this test"
        );
    }
    let mut upward = Vec::new();
    for (m, used) in &g {
        for u in used {
            let (lm, lu) = (
                layer[m.as_str()],
                layer.get(u.as_str()).copied().unwrap_or(0),
            );
            if lu > lm {
                upward.push(format!("{m} (layer {lm}) uses {u} (layer {lu})"));
            }
        }
    }
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));
    assert_eq!(has_cycle(&g), None, "a cycle between modules");
    // The test can fail: an edge from lake to app would be caught.
    let mut bad = g.clone();
    bad.entry("lake".into()).or_default().insert("app".into());
    bad.entry("app".into()).or_default().insert("lake".into());
    assert!(has_cycle(&bad).is_some());
}

#[test]
fn delta_and_datafusion_stay_in_lake_and_query() {
    let src = repo().join("src");
    let mut found = Vec::new();
    for f in all_files(&src)
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "rs"))
    {
        let m = module_of(&src, f).unwrap_or_default();
        if m == "lake" || m == "query" {
            continue;
        }
        let text = code(f);
        for needle in ["datafusion::", "deltalake::"] {
            if text.contains(needle) {
                found.push(format!("{} uses {needle}", f.display()));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// Functions (by `fn` line to its closing brace at the same indentation) and their lengths.
fn functions(file: &Path) -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let is_fn = [
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "pub(super) fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) async fn ",
            "pub(super) async fn ",
        ]
        .iter()
        .any(|p| t.starts_with(p));
        if !is_fn || t.ends_with(';') {
            continue;
        }
        let indent = &l[..l.len() - t.len()];
        let close = format!("{indent}}}");
        if let Some(n) = lines[i..].iter().position(|x| *x == close) {
            out.push((format!("{}:{}", file.display(), i + 1), n + 1));
        }
    }
    out
}

#[test]
fn no_function_runs_much_past_eighty_lines() {
    let src = repo().join("src");
    let mut long: Vec<(String, usize)> = all_files(&src)
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "rs"))
        .flat_map(|f| functions(f))
        .filter(|(_, n)| *n > 90)
        .collect();
    long.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    assert!(long.is_empty(), "functions over 90 lines: {long:?}");
}
