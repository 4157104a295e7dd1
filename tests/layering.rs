//! The worker's modules form layers: records at the bottom (`facts`,
//! `problem`), the code that converges each concern above them, the
//! worker on top; and so do the `charm` crate's, the durable write at the
//! bottom, the files and the intent mark above it. A module that reaches
//! up into one that reaches back down ties both into one knot that must
//! be read together; these tests fail, naming the loop, when any module
//! of `src/` or `charm/src/` imports one that (through others) imports it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name -> the modules of the crate in `src` its code (not its
/// comments) names as `crate::<module>`.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(src).unwrap() {
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
    // Only modules of this crate (a `crate::x` for an item of main.rs or
    // lib.rs is not a module).
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|u| modules.contains(u));
    }
    graph
}

/// The first import loop among the modules of `graph`, as a path.
fn a_loop(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
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
    graph
        .keys()
        .find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

/// The crate in `dir` (relative to the repository) has no import loop,
/// and each of `bottom` imports nothing of the crate.
fn assert_layered(dir: &str, bottom: &[&str]) {
    let graph = imports(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir));
    if let Some(cycle) = a_loop(&graph) {
        panic!("an import loop in {dir}: {}", cycle.join(" -> "));
    }
    for module in bottom {
        assert_eq!(
            graph[*module],
            BTreeSet::new(),
            "{module} imports nothing of the crate in {dir}"
        );
    }
}

#[test]
fn no_module_of_src_imports_one_that_imports_it_back() {
    // The records are at the bottom.
    assert_layered("src", &["facts", "problem"]);
}

#[test]
fn no_module_of_the_charm_crate_imports_one_that_imports_it_back() {
    // The durable write and the quoting of text are at the bottom: what
    // every other module may use.
    assert_layered("charm/src", &["durable", "quote"]);
}

#[test]
fn the_loop_finder_finds_a_loop() {
    let edge = |a: &str, b: &str| (a.to_string(), BTreeSet::from([b.to_string()]));
    let graph = BTreeMap::from([edge("a", "b"), edge("b", "c"), edge("c", "a")]);
    assert_eq!(a_loop(&graph).unwrap(), ["a", "b", "c", "a"]);
    let graph = BTreeMap::from([edge("a", "b"), edge("b", "c")]);
    assert_eq!(a_loop(&graph), None);
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `hooks/` holds one link to `dispatch` for every hook metadata.yaml
/// implies (an agent older than 2.8 runs hooks/<name>, and runs nothing
/// for a hook with no file): a new relation cannot miss its hooks, and
/// nothing stale stays.
#[test]
fn hooks_follow_metadata() {
    let metadata: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("metadata.yaml")).unwrap())
            .unwrap();
    let mut wanted: std::collections::BTreeSet<String> = [
        "install",
        "start",
        "stop",
        "remove",
        "config-changed",
        "upgrade-charm",
        "update-status",
        "leader-elected",
        "leader-settings-changed",
        "secret-changed",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect();
    for role in ["requires", "provides", "peers"] {
        for (endpoint, _) in metadata[role].as_object().unwrap() {
            for event in ["created", "joined", "changed", "departed", "broken"] {
                wanted.insert(format!("{endpoint}-relation-{event}"));
            }
        }
    }
    let mut found = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(root().join("hooks")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(
            std::fs::read_link(entry.path()).ok(),
            Some(std::path::PathBuf::from("../dispatch")),
            "hooks/{name} must be a link to ../dispatch"
        );
        found.insert(name);
    }
    let missing: Vec<_> = wanted.difference(&found).collect();
    let stale: Vec<_> = found.difference(&wanted).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "hooks/ is missing {missing:?} and has {stale:?} that metadata.yaml does not imply \
         (ln -s ../dispatch hooks/<name>)"
    );
}
