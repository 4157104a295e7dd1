//! The referee of the charm's evaluation: kube-bench v0.6.8's, the version
//! today's charm runs, transcribed from its `check/check.go` (`run`,
//! `runAuditCommands`, `execute`) and `check/test.go` (`execute`,
//! `evaluate`, the `findValue`s, `compareOp`) in its own shape: its
//! regular expression for flags, its JSON-then-YAML unmarshal, its
//! printing of JSONPath results. It shares nothing with the charm's code
//! but the checks' table, so where the two disagree on a generated command
//! line or config file, one of them misreads kube-bench.

use regex::Regex;
use serde_json::Value;

use super::checks::{Audit, Check, Item, Op, State};

/// A check's result as kube-bench reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub state: State,
    pub actual: String,
    pub expected: String,
}

/// `Check.run()` for a check whose audit command succeeded with
/// `audit_output`; `audit_config`, for a check that has one: cat's output,
/// or `Err` when cat failed (the check then fails with a reason and no
/// values). `substitute` replaces `$proxykubeconfig` and the like, as
/// kube-bench does in the controls' text before reading them.
pub fn run(
    check: &Check,
    audit_output: &str,
    audit_config: Result<&str, ()>,
    substitute: &dyn Fn(&str) -> String,
) -> Verdict {
    let has_config = matches!(check.audit, Audit::Kubelet { config: true });
    let fail = |passed: bool| match (passed, check.scored) {
        (true, _) => State::Pass,
        (false, true) => State::Fail,
        (false, false) => State::Warn,
    };
    let config_output = match (has_config, audit_config) {
        (false, _) => "",
        (true, Ok(text)) => text,
        (true, Err(())) => {
            return Verdict {
                state: fail(false),
                actual: String::new(),
                expected: String::new(),
            }
        }
    };
    let mut results = Vec::new();
    for item in check.items {
        let flag = substitute(item.flag);
        let mut result = execute(item, &flag, Used::Command, audit_output);
        if !result.flag_found && has_config {
            result = execute(item, &flag, Used::Config, config_output);
        }
        results.push(result);
    }
    let (passed, joiner) = if check.or {
        (results.iter().any(|r| r.test_result), " OR ")
    } else {
        (results.iter().all(|r| r.test_result), " AND ")
    };
    let expected: Vec<&str> = results.iter().map(|r| r.expected.as_str()).collect();
    Verdict {
        state: fail(passed),
        actual: results[0].actual.clone(),
        expected: expected.join(joiner),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Used {
    Command,
    Config,
}

struct TestOutput {
    test_result: bool,
    expected: String,
    flag_found: bool,
    actual: String,
}

/// `testItem.execute`: one row (no check here uses multiple outputs).
fn execute(t: &Item, flag: &str, used: Used, s: &str) -> TestOutput {
    let s = s.trim_end_matches([' ', '\n']);
    let mut out = evaluate(t, flag, used, s);
    out.actual = s.to_string();
    out
}

/// `testItem.evaluate`.
fn evaluate(t: &Item, flag: &str, used: Used, s: &str) -> TestOutput {
    let name = if used == Used::Config { t.path } else { flag };
    let found = match used {
        Used::Command => Ok(flag_find_value(flag, s)),
        Used::Config => path_find_value(t.path, s),
    };
    let (matched, value) = match found {
        Ok(found) => found,
        // failTestItem
        Err(()) => {
            return TestOutput {
                test_result: false,
                expected: String::new(),
                flag_found: false,
                actual: String::new(),
            }
        }
    };
    let (expected, test_result) = if t.set {
        match t.compare {
            Some((op, want)) if matched => compare_op(op, &value, want, name),
            _ => (format!("'{name}' is present"), matched),
        }
    } else {
        (format!("'{name}' is not present"), !matched)
    };
    TestOutput {
        test_result,
        expected,
        flag_found: matched,
        actual: String::new(),
    }
}

/// `flagTestItem.findValue`, its pattern built as kube-bench builds it.
fn flag_find_value(flag: &str, s: &str) -> (bool, String) {
    if s.is_empty() || flag.is_empty() {
        return (false, String::new());
    }
    if !s.contains(flag) {
        return (false, String::new());
    }
    // Go's `\s` is ASCII: tab, newline, form feed, carriage return, space.
    let pattern = format!(r"({flag})(=|: *)*([^\t\n\f\r ]*) *");
    let Some(re) = compiled(&pattern) else {
        return (true, String::new());
    };
    let Some(caps) = re.captures(s) else {
        return (true, String::new());
    };
    let group = |i: usize| caps.get(i).map_or("", |m| m.as_str()).to_string();
    let value = if !group(3).is_empty() {
        group(3)
    } else if flag.starts_with("--") {
        "true".to_string()
    } else {
        group(1)
    };
    (true, value)
}

/// Go compiles the pattern at every call; compiled once per pattern here,
/// for the generated cases' sake.
fn compiled(pattern: &str) -> Option<Regex> {
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<String, Option<Regex>>> =
            Default::default();
    }
    CACHE.with(|cache| {
        cache
            .borrow_mut()
            .entry(pattern.to_string())
            .or_insert_with(|| Regex::new(pattern).ok())
            .clone()
    })
}

/// `pathTestItem.findValue`: `unmarshal` (JSON, else YAML), then the
/// JSONPath with missing keys allowed; found when it prints anything.
fn path_find_value(path: &str, s: &str) -> Result<(bool, String), ()> {
    let doc: Value = match serde_json::from_str(s) {
        Ok(v) => v,
        Err(_) => serde_yaml::from_str(s).map_err(|_| ())?,
    };
    let value = json_path(path, &doc)?;
    Ok((!value.is_empty(), value))
}

/// The two JSONPath forms the checks use, printed as client-go's
/// jsonpath prints them (Go's `fmt.Fprint` of each result).
fn json_path(path: &str, doc: &Value) -> Result<String, ()> {
    if path.is_empty() {
        return Ok(String::new());
    }
    if let Some(field) = path
        .strip_prefix("{range .")
        .and_then(|p| p.strip_suffix("[:]}{}{','}{end}"))
    {
        return Ok(match doc.get(field) {
            None => String::new(),
            Some(Value::Array(items)) => items.iter().map(|v| go_print(v) + ",").collect(),
            Some(_) => return Err(()),
        });
    }
    let keys = path.strip_prefix("{.").and_then(|p| p.strip_suffix('}'));
    let mut value = doc;
    for key in keys.ok_or(())?.split('.') {
        match value.get(key) {
            Some(v) => value = v,
            None => return Ok(String::new()),
        }
    }
    Ok(go_print(value))
}

fn go_print(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_print).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_print(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// `compareOp`, for the operators the checks use.
fn compare_op(op: Op, flag_val: &str, compare_value: &str, name: &str) -> (String, bool) {
    let lower = flag_val.to_lowercase();
    let boolean = lower == "false" || lower == "true";
    match op {
        Op::Eq => (
            format!("'{name}' is equal to '{compare_value}'"),
            if boolean {
                lower == compare_value
            } else {
                flag_val == compare_value
            },
        ),
        Op::NotEq => (
            format!("'{name}' is not equal to '{compare_value}'"),
            if boolean {
                lower != compare_value
            } else {
                flag_val != compare_value
            },
        ),
        Op::NotHave => (
            format!("'{name}' does not have '{compare_value}'"),
            !flag_val.contains(compare_value),
        ),
        Op::ValidElements => {
            let split = |s: &str| -> Vec<String> {
                let clean = s.trim().trim_end_matches(',');
                if clean.is_empty() {
                    return Vec::new();
                }
                clean.split(',').map(|e| e.trim().to_string()).collect()
            };
            let (s, t) = (split(flag_val), split(compare_value));
            let valid = match (s.is_empty(), t.is_empty()) {
                (true, true) => true,
                (true, false) | (false, true) => false,
                (false, false) => s.iter().all(|sv| t.contains(sv)),
            };
            (
                format!("'{name}' contains valid elements from '{compare_value}'"),
                valid,
            )
        }
        Op::Bitmask => {
            let pattern = format!(
                "{name} has permissions {flag_val}, expected {compare_value} or more restrictive"
            );
            let Ok(requested) = i64::from_str_radix(flag_val, 8) else {
                return (format!("Not numeric value - flag: {flag_val}"), false);
            };
            let Ok(max) = i64::from_str_radix(compare_value, 8) else {
                return (format!("Not numeric value - flag: {compare_value}"), false);
            };
            (pattern, max & requested == requested)
        }
    }
}
