//! JSON as Python's `json.dumps` writes it, byte for byte: the integrators
//! and today's interface libraries hash and compare what it prints, so a
//! request this charm makes must read, and hash, exactly as theirs.
//!
//! Python's defaults: `", "` and `": "` between items, every character
//! outside printable ASCII escaped (`ensure_ascii`), lowercase `\uXXXX`
//! with surrogate pairs above the BMP. `sort_keys` sorts by code point,
//! which is the byte order of UTF-8, so a `serde_json` map (a BTreeMap)
//! is already in that order; an [`Ordered`] object keeps its own order,
//! as a Python dict built in code does.

use serde_json::Value;

/// `json.dumps(value, sort_keys=True)`.
pub fn dumps_sorted(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value);
    out
}

/// A JSON object written in the order given, as `json.dumps` writes a
/// dict without `sort_keys`.
pub type Ordered<'a> = &'a [(&'a str, Value)];

/// `json.dumps(dict)` of a dict built in this order.
pub fn dumps_ordered(pairs: Ordered) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        string(&mut out, key);
        out.push_str(": ");
        write(&mut out, value);
    }
    out.push('}');
    out
}

/// `json.loads(text)`, or the text itself where it is not JSON, as both
/// charms.reactive's relation views and the ops libraries decode a value
/// before hashing it.
pub fn loads_or_text(text: &str) -> Value {
    // Python's decoder takes surrounding whitespace, as serde_json does;
    // neither takes what follows a complete value.
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn write(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => number(out, n),
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                string(out, key);
                out.push_str(": ");
                write(out, item);
            }
            out.push('}');
        }
    }
}

/// Integers as Python prints them; a float as its `repr`: the shortest
/// digits that read back the same (serde_json's, from ryu, the same
/// digits), placed as Python places them: in exponent form where the
/// point falls more than 16 digits right or 4 left, else with `.0` on
/// whole numbers. (Rust's own float formatting would add its tables to
/// every binary for this one use.)
fn number(out: &mut String, n: &serde_json::Number) {
    let text = n.to_string();
    if n.is_i64() || n.is_u64() {
        out.push_str(&text);
        return;
    }
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The value is 0.<digits> x 10^point.
    let all = format!("{whole}{fraction}");
    let leading = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    let point = whole.len() as i32 + exponent - leading as i32;
    if negative {
        out.push('-');
    }
    if digits.is_empty() {
        out.push_str("0.0");
        return;
    }
    let count = digits.len() as i32;
    if !(-4 < point && point <= 16) {
        out.push_str(&digits[..1]);
        if count > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = point - 1;
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        if e.abs() < 10 {
            out.push('0');
        }
        out.push_str(&e.abs().to_string());
    } else if point <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat(-point as usize));
        out.push_str(digits);
    } else if point >= count {
        out.push_str(digits);
        out.push_str(&"0".repeat((point - count) as usize));
        out.push_str(".0");
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
}

fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Printed by CPython 3 (`json.dumps(v, sort_keys=True)`), so that the
    /// test holds where no Python is installed.
    #[test]
    fn as_cpython_prints_it() {
        let cases: [(Value, &str); 6] = [
            (
                json!({"b": [1, 2.5, true, null], "a": {"z": "x", "y": "é"}}),
                r#"{"a": {"y": "\u00e9", "z": "x"}, "b": [1, 2.5, true, null]}"#,
            ),
            (
                json!("tab\there \"q\" \\ \u{7f} \u{1}"),
                r#""tab\there \"q\" \\ \u007f \u0001""#,
            ),
            (json!("😀"), r#""\ud83d\ude00""#),
            (
                json!([1.0, 1e16, 1e-5, 0.0001, 123456789.125]),
                "[1.0, 1e+16, 1e-05, 0.0001, 123456789.125]",
            ),
            (
                json!({"B": 1, "a": 2, "_": 3}),
                r#"{"B": 1, "_": 3, "a": 2}"#,
            ),
            (json!({}), "{}"),
        ];
        for (value, python) in cases {
            assert_eq!(dumps_sorted(&value), python);
        }
        assert_eq!(
            dumps_ordered(&[("z", json!("owned")), ("a", json!(1))]),
            r#"{"z": "owned", "a": 1}"#
        );
    }

    #[test]
    fn values_decode_as_the_python_views_decode_them() {
        assert_eq!(loads_or_text("true"), json!(true));
        assert_eq!(loads_or_text("\"i-0abc\""), json!("i-0abc"));
        assert_eq!(loads_or_text("10.0.0.5"), json!("10.0.0.5"));
        assert_eq!(loads_or_text("10.0.0.5/32"), json!("10.0.0.5/32"));
        assert_eq!(loads_or_text(""), json!(""));
        assert_eq!(loads_or_text("80"), json!(80));
    }

    /// Where CPython is installed, it agrees on bags shaped like the
    /// integrations' (`python3` is installed by CI).
    #[test]
    fn cpython_agrees_where_it_is_installed() {
        let bag = json!({
            "egress-subnets": "10.0.0.5/32",
            "instance-tags": {"kubernetes.io/cluster/kubernetes-4ypskxahbu3rnfgsds3pksvwe3uh0lxt": "owned"},
            "object-storage-management-patterns": ["arn:aws:s3:::kubernetes-*"],
            "requested": true,
            "n": [0, -1, 3.25, 1e300, 2e-7, 1e16, 1e15, 12345.678, 0.00012, 5e-324, 1.7976931348623157e308, -0.0],
            "text": "ünïcödé \u{2028} 😀 \"\\/",
        });
        let ours = dumps_sorted(&bag);
        let script = "import json,sys; print(json.dumps(json.loads(sys.stdin.read()), sort_keys=True), end='')";
        let child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("skipped: no python3");
            return;
        };
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(bag.to_string().as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        assert_eq!(String::from_utf8(output.stdout).unwrap(), ours);
    }
}
