//! Each concern owns its part of the journal and its own problems:
//! docs/engineers/records.md says which files write which journal field
//! and which concern's problems, and this test fails, naming the file,
//! where the code writes one it does not own, or where the journal has a
//! field the page does not list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `src/`, as `src/...`.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&root().join("src"), &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let name = p
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The code of a file without comments, with the whitespace around each
/// `.` of a method chain taken out (`recorded\n.journal\n.daemons`).
fn code(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect();
    let joined = lines.join(" ");
    let mut out = String::new();
    for word in joined.split_whitespace() {
        if !(word.starts_with('.') || out.ends_with('.') || out.is_empty()) {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The rows of the markdown table whose header starts with `header`:
/// backticked names of the first column -> backticked files of the second.
fn table(page: &str, header: &str) -> BTreeMap<String, BTreeSet<String>> {
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut rows = BTreeMap::new();
    let mut inside = false;
    for line in page.lines() {
        if line.starts_with(&format!("| {header} ")) {
            inside = true;
            continue;
        }
        if !line.starts_with('|') {
            inside = false;
            continue;
        }
        if !inside || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').collect();
        for name in ticked(cells[1]) {
            rows.insert(name, ticked(cells[2]).into_iter().collect());
        }
    }
    rows
}

/// Where `text` changes what `subject` names: assigned, or changed in
/// place.
fn writes(text: &str, subject: &str) -> bool {
    const CHANGES: [&str; 10] = [
        ".insert(",
        ".remove(",
        ".clear(",
        ".entry(",
        ".retain(",
        ".extend(",
        ".take(",
        ".get_mut(",
        ".push(",
        ".get_or_insert",
    ];
    let mut rest = text;
    while let Some(at) = rest.find(subject) {
        let after = &rest[at + subject.len()..];
        let next = after.chars().next();
        let whole = !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let assigned = after.trim_start().starts_with('=') && !after.trim_start().starts_with("==");
        if whole && (assigned || CHANGES.iter().any(|c| after.starts_with(c))) {
            return true;
        }
        rest = after;
    }
    false
}

fn journal_fields() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("src/journal.rs")).unwrap();
    let body = text
        .split("pub struct Journal {")
        .nth(1)
        .and_then(|b| b.split("\n}").next())
        .unwrap();
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split(':').next())
        .map(str::to_string)
        .filter(|f| f != "format")
        .collect()
}

#[test]
fn each_concern_writes_only_its_own_records() {
    let page = std::fs::read_to_string(root().join("docs/engineers/records.md")).unwrap();
    let owners = table(&page, "journal field");
    let concerns = table(&page, "concern");
    let fields = journal_fields();
    assert!(fields.len() > 10, "the journal's fields were not found");
    let listed: BTreeSet<String> = owners.keys().cloned().collect();
    assert_eq!(
        fields, listed,
        "docs/engineers/records.md must list each journal field once"
    );
    assert!(concerns.len() >= 6, "the concerns' table was not found");
    let mut wrong = Vec::new();
    for (file, text) in sources() {
        if file == "src/journal.rs" || file == "src/facts.rs" {
            continue;
        }
        let code = code(&text);
        for (field, files) in &owners {
            if writes(&code, &format!("journal.{field}")) && !files.contains(&file) {
                wrong.push(format!("{file} writes journal field {field}"));
            }
        }
        for (concern, files) in &concerns {
            let set = [".set(", ".clear("]
                .iter()
                .any(|how| code.contains(&format!("concerns{how}Concern::{concern}")));
            if set && !files.contains(&file) {
                wrong.push(format!("{file} sets the {concern} concern's problems"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "records written outside their owners: {wrong:#?}"
    );
}

#[test]
fn a_write_is_found_however_it_is_laid_out() {
    let text = code("recorded\n    .journal\n    .daemons // c\n    .entry(x)");
    assert!(writes(&text, "journal.daemons"));
    assert!(writes("a.journal.labels = b", "journal.labels"));
    assert!(!writes("a.journal.labels == b", "journal.labels"));
    assert!(!writes("a.journal.labels_pending = b", "journal.labels"));
    assert!(!writes("a.journal.labels.get(k)", "journal.labels"));
}
