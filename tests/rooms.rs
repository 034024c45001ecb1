//! The house rules docs/design.md ("Rooms") states, checked on the source tree: no two
//! modules of a crate import each other, directly or around a circle. A circle makes
//! every file in it part of every change to any of them; the rooms stay apart only if
//! imports run one way.
//!
//! A module's imports are the `crate::…` and `super::…` paths it names outside its
//! test module; each resolves to the deepest module file it reaches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every crate's source root.
const CRATES: [&str; 8] = [
    "proto/src",
    "common/src",
    "aws/src",
    "db/src",
    "report/src",
    "coordinator/src",
    "worker/src",
    "src",
];

type Module = Vec<String>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file is (`lib.rs`, `main.rs`, `mod.rs` are their directory's).
fn module_of(root: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        parts.pop();
    }
    parts
}

/// The source outside comments and the test module at the end of a file.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> Option<&str> {
    let end = s
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(s.len());
    (end > 0 && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')).then(|| &s[..end])
}

/// The module paths named after `crate::` or `super::` in `code`, made absolute.
fn paths(code: &str, me: &Module) -> Vec<Module> {
    let mut out = Vec::new();
    for (anchor, base) in [("crate::", Vec::new()), ("super::", me.clone())] {
        let mut rest = code;
        while let Some(i) = rest.find(anchor) {
            // `super::super::x`: one level up per `super`.
            let mut base = base.clone();
            let mut tail = &rest[i + anchor.len()..];
            if anchor == "super::" {
                base.pop();
                while let Some(t) = tail.strip_prefix("super::") {
                    base.pop();
                    tail = t;
                }
            }
            if let Some(group) = tail.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                for item in inner.split(',') {
                    if let Some(name) = ident_at(item.trim()) {
                        let mut p = base.clone();
                        p.push(name.to_string());
                        out.push(p);
                    }
                }
            } else {
                let mut p = base.clone();
                let mut t = tail;
                while let Some(name) = ident_at(t) {
                    p.push(name.to_string());
                    match t[name.len()..].strip_prefix("::") {
                        Some(next) => t = next,
                        None => break,
                    }
                }
                out.push(p);
            }
            rest = &rest[i + anchor.len()..];
        }
    }
    out
}

/// Strongly connected components of more than one module (Tarjan's algorithm).
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        for w in &s.graph[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.clone());
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
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn crate_circles(root: &Path) -> Vec<Vec<Module>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeMap<Module, PathBuf> = files
        .iter()
        .map(|f| (module_of(root, f), f.clone()))
        .collect();
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (me, file) in &modules {
        let text = code(&std::fs::read_to_string(file).unwrap());
        let edges = graph.entry(me.clone()).or_default();
        for p in paths(&text, me) {
            // The deepest module file the path reaches.
            let target = (0..=p.len())
                .rev()
                .map(|k| p[..k].to_vec())
                .find(|m| modules.contains_key(m));
            if let Some(t) = target.filter(|t| t != me) {
                edges.insert(t);
            }
        }
    }
    circles(&graph)
}

#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for dir in CRATES {
        for circle in crate_circles(&repo.join(dir)) {
            let mut names: Vec<String> = circle
                .iter()
                .map(|m| {
                    if m.is_empty() {
                        "lib".into()
                    } else {
                        m.join("/")
                    }
                })
                .collect();
            names.sort();
            found.push(format!("{dir}: {}", names.join(" <-> ")));
        }
    }
    assert!(
        found.is_empty(),
        "import circles (move what both sides need into a module of its own, as docs/design.md \"Rooms\" says):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_a_circle_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    std::fs::write(src.join("b.rs"), "use super::{a, c};\npub struct B;\n").unwrap();
    std::fs::write(
        src.join("c.rs"),
        "pub struct C;\n#[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\n",
    )
    .unwrap();
    let found = crate_circles(src);
    assert_eq!(found.len(), 1, "{found:?}");
    let mut names: Vec<String> = found[0].iter().map(|m| m.join("/")).collect();
    names.sort();
    assert_eq!(names, ["a", "b"], "c imports a only in its tests");
}
