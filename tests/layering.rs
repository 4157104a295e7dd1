//! The worker's modules form layers: records at the bottom (`facts`,
//! `problem`), the code that converges each concern above them, the
//! worker on top. A module that reaches up into one that reaches back
//! down ties both into one knot that must be read together; this test
//! fails, naming the loop, when any module of `src/` imports one that
//! (through others) imports it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name -> the modules of this crate its code (not its comments)
/// names as `crate::<module>`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // A module of several files: each of them is the module's.
            let module = path.file_name().unwrap().to_string_lossy().into_owned();
            for file in std::fs::read_dir(&path).unwrap() {
                let file = file.unwrap().path();
                if file.extension().is_some_and(|e| e == "rs") {
                    files.push((module.clone(), file));
                }
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push((
                path.file_stem().unwrap().to_string_lossy().into_owned(),
                path,
            ));
        }
    }
    for (module, path) in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut uses = BTreeSet::new();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    let inner = group.split('}').next().unwrap_or("");
                    for item in inner.split(',') {
                        let name: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() {
                            uses.insert(name);
                        }
                    }
                } else {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        uses.insert(name);
                    }
                }
            }
        }
        uses.remove(&module);
        graph
            .entry(module)
            .or_insert_with(BTreeSet::new)
            .extend(uses);
    }
    // Only modules of this crate (a `crate::x` for an item of main.rs is
    // not a module).
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|u| modules.contains(u));
    }
    graph
}

#[test]
fn no_module_of_src_imports_one_that_imports_it_back() {
    let graph = imports();
    // Depth-first search for a cycle, reporting its path.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            panic!("an import loop: {}", cycle.join(" -> "));
        }
    }
    // The records are at the bottom.
    for bottom in ["facts", "problem"] {
        assert_eq!(
            graph[bottom],
            BTreeSet::new(),
            "{bottom} imports nothing of the crate"
        );
    }
}
