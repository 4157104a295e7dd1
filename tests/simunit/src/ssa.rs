//! Server-side apply as kube-apiserver does it: the test API server hands
//! each write of an object to a helper built from the library
//! kube-apiserver's field manager is made of (structured-merge-diff,
//! Debian's golang-k8s-sigs-structured-merge-diff-dev), so that field
//! ownership, lists merged by their keys, Apply against Update and
//! conflicts are the real ones. The helper (tests/ssa) is built with
//! Debian's Go the first time a test needs it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

const MAIN: &str = include_str!("../../ssa/main.go");
const SCHEMA: &str = include_str!("../../ssa/schema.yaml");
const LIBRARY: &str = "/usr/share/gocode/src/sigs.k8s.io/structured-merge-diff";

/// What a write came to.
pub enum Outcome {
    /// The object as stored, managedFields and all.
    Stored(Value),
    /// Without `force`, another manager owns fields this apply sets.
    Conflicts(String),
}

/// The schema type of an object: the kinds with associative lists are
/// spelt out in tests/ssa/schema.yaml, the others deduced.
fn type_of(kind: &str) -> &'static str {
    match kind {
        "DaemonSet" => "io.k8s.api.apps.v1.DaemonSet",
        _ => "__untyped_deduced_",
    }
}

/// `operation`: "Apply" or "Update". `live`: the stored object, if any.
pub fn write(
    operation: &str,
    manager: &str,
    force: bool,
    live: Option<&Value>,
    object: &Value,
) -> Result<Outcome, String> {
    let request = json!({
        "operation": operation,
        "type": type_of(object["kind"].as_str().unwrap_or_default()),
        "apiVersion": object["apiVersion"],
        "manager": manager,
        "force": force,
        "live": live,
        "object": object,
    });
    let mut child = Command::new(helper()?)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running the ssa helper: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(request.to_string().as_bytes())
        .map_err(|e| format!("writing to the ssa helper: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for the ssa helper: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let answer: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    match answer.get("conflicts").and_then(Value::as_str) {
        Some(c) => Ok(Outcome::Conflicts(c.to_string())),
        None => Ok(Outcome::Stored(answer["object"].clone())),
    }
}

/// The helper, built once per test process into a directory named by its
/// source (shared by concurrent test processes: the binary is renamed into
/// place whole).
fn helper() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> Result<PathBuf, String> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(MAIN, SCHEMA), &mut hasher);
    let dir = std::env::temp_dir().join(format!(
        "juju-sim-ssa-{:016x}",
        std::hash::Hasher::finish(&hasher)
    ));
    let binary = dir.join("ssa");
    if binary.exists() {
        return Ok(binary);
    }
    if !Path::new(LIBRARY).is_dir() || Command::new("go").arg("version").output().is_err() {
        return Err("the test API server's server-side apply needs Go and structured-merge-diff: apt-get install golang-go golang-k8s-sigs-structured-merge-diff-dev (make deps does)".into());
    }
    let work = tempfile::tempdir_in(std::env::temp_dir()).map_err(|e| e.to_string())?;
    let src = work.path().join("src");
    let gopath = work.path().join("gopath");
    let v4 = gopath.join("src/sigs.k8s.io/structured-merge-diff/v4");
    let io = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(&src).map_err(io)?;
    std::fs::create_dir_all(v4.parent().unwrap_or(&gopath)).map_err(io)?;
    // Debian lays the module out without its /v4: GOPATH mode finds it
    // through this link.
    std::os::unix::fs::symlink(LIBRARY, &v4).map_err(io)?;
    std::fs::write(src.join("main.go"), MAIN).map_err(io)?;
    std::fs::write(src.join("schema.yaml"), SCHEMA).map_err(io)?;
    let built = work.path().join("ssa");
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&built)
        .arg(".")
        .current_dir(&src)
        .env("GOPATH", format!("{}:/usr/share/gocode", gopath.display()))
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", work.path().join("cache"))
        .output()
        .map_err(|e| format!("running go build: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the ssa helper: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::create_dir_all(&dir).map_err(io)?;
    let staged = dir.join(format!("ssa.{}", std::process::id()));
    std::fs::copy(&built, &staged).map_err(io)?;
    std::fs::rename(&staged, &binary).map_err(io)?;
    Ok(binary)
}
