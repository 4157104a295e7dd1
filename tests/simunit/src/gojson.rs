//! Output as Juju's Go formatters print it.

use serde_json::Value;

/// Go's `encoding/json`: sorted map keys, `<`, `>`, `&`, U+2028 and U+2029
/// escaped, and the cmd formatter's trailing newline.
pub fn json(value: &Value) -> String {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    // These characters can only occur inside JSON strings, where Go escapes
    // them; replacing them everywhere is therefore exact.
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('\n');
    out
}

/// The `smart` and `yaml` formats: a plain string prints as itself, a
/// missing value as nothing, anything else as YAML.
pub fn smart(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => format!("{s}\n"),
        Value::Bool(b) => format!("{}\n", if *b { "True" } else { "False" }),
        other => serde_yaml::to_string(other).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let v = serde_json::json!({"b": "<a&b>", "a": 1});
        assert_eq!(json(&v), "{\"a\":1,\"b\":\"\\u003ca\\u0026b\\u003e\"}\n");
    }
}
