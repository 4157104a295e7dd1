//! Operator-written flag lists and labels: `kubelet-extra-args`,
//! `proxy-extra-args` ("v=2 node-labels=a=b flag") and `labels`
//! ("k=v k2=v2"). A bad token is reported quoted, so the operator sees
//! exactly what to fix.

use std::collections::BTreeMap;

/// Parses space-separated `key=value` or bare `flag` (meaning `true`). A
/// value that starts with `"` runs to the next unescaped `"` and may hold
/// spaces (`node-labels="a=b c=d"`); inside it `\"` and `\\` stand for `"`
/// and `\`. Any other value is taken as written, quotes and all.
pub fn parse_extra_args(option: &str, text: &str) -> Result<BTreeMap<String, String>, String> {
    if text.len() > EXTRA_ARGS_MAX {
        return Err(format!(
            "{option} is {} bytes long; at most {EXTRA_ARGS_MAX} fit in the daemon's arguments",
            text.len()
        ));
    }
    let mut args = BTreeMap::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (key, value, token) = match rest[..end].split_once('=') {
            Some((k, v)) if v.starts_with('"') => {
                let start = k.len() + 2;
                let (value, len) = quoted(&rest[start..]).ok_or_else(|| {
                    format!(
                        "{option} has an unterminated quote in {}",
                        crate::validate::quoted(&rest[..end])
                    )
                })?;
                let token = &rest[..start + len];
                (k, value, token)
            }
            Some((k, v)) => (k, v.to_string(), &rest[..end]),
            None => (&rest[..end], "true".to_string(), &rest[..end]),
        };
        rest = rest[token.len()..].trim_start();
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            let hint = if key.starts_with('-') {
                " (write key=value without leading dashes)"
            } else {
                ""
            };
            return Err(format!(
                "{option} has a bad token {}{hint}",
                crate::validate::quoted(token)
            ));
        }
        // A newline would end the flag in a snap's option or config file.
        if value.chars().any(char::is_control) {
            return Err(format!(
                "{option}: the value of {key} holds a control character: {}",
                crate::validate::quoted(&value)
            ));
        }
        args.insert(key.to_string(), value);
    }
    Ok(args)
}

/// The longest `*-extra-args` option: the daemon's flags reach `snap set`
/// as one argument, which the kernel caps at 128 KiB (MAX_ARG_STRLEN),
/// and escaping for the snaps' bash can double a value.
pub const EXTRA_ARGS_MAX: usize = 32 * 1024;

/// The text up to the closing `"` (unescaped) and how many bytes it took,
/// the closing quote included.
fn quoted(text: &str) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, i + 1)),
            '\\' => match chars.next() {
                Some((_, next @ ('"' | '\\'))) => value.push(next),
                Some((_, next)) => {
                    value.push('\\');
                    value.push(next);
                }
                None => return None,
            },
            other => value.push(other),
        }
    }
    None
}

/// The labels an operator asks for: to set, and to remove (`key-`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    pub set: BTreeMap<String, String>,
    pub remove: std::collections::BTreeSet<String>,
}

/// Parses `labels`: space-separated `key=value`, each valid for Kubernetes,
/// or `key-` to remove that label from the node (as `kubectl label` does).
pub fn parse_labels(text: &str) -> Result<Labels, String> {
    let mut labels = Labels::default();
    for token in text.split_whitespace() {
        let bad = |why: &str| {
            format!(
                "labels has a bad label {}: {why}",
                crate::validate::quoted(token)
            )
        };
        let (key, value) = match token.split_once('=') {
            Some(kv) => kv,
            None => match token.strip_suffix('-') {
                Some(key) => {
                    check_label_key(key).map_err(bad)?;
                    labels.set.remove(key);
                    labels.remove.insert(key.to_string());
                    continue;
                }
                None => return Err(bad("expected key=value, or key- to remove a label")),
            },
        };
        check_label_key(key).map_err(bad)?;
        if !value.is_empty() && !is_label_word(value) {
            return Err(bad("the value must be at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"));
        }
        labels.remove.remove(key);
        labels.set.insert(key.to_string(), value.to_string());
    }
    Ok(labels)
}

fn check_label_key(key: &str) -> Result<(), &'static str> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if !is_dns_subdomain(prefix) {
                return Err("the prefix must be a DNS subdomain");
            }
            name
        }
        None => key,
    };
    if !is_label_word(name) {
        return Err("the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending alphanumeric");
    }
    Ok(())
}

/// A label value Kubernetes accepts (other than the empty one).
pub fn is_label_word(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && !s.is_empty()
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_values_are_refused() {
        let err =
            parse_extra_args("kubelet-extra-args", "v=2 node-labels=\"a=b\nc=d\"").unwrap_err();
        assert_eq!(
            err,
            r#"kubelet-extra-args: the value of node-labels holds a control character: "a=b\nc=d""#
        );
        let long = format!("{}=1", "-".repeat(100_000));
        assert!(parse_extra_args("x", &long).unwrap_err().len() < 200);
    }

    #[test]
    fn extra_args() {
        let args = parse_extra_args(
            "kubelet-extra-args",
            "v=2  read-only-port=0 enable-debugging-handlers node-labels=a=b",
        )
        .unwrap();
        assert_eq!(args["v"], "2");
        assert_eq!(args["enable-debugging-handlers"], "true");
        assert_eq!(args["node-labels"], "a=b");
        assert!(parse_extra_args("x", "").unwrap().is_empty());
        assert_eq!(
            parse_extra_args("kubelet-extra-args", "v=2 --max-pods=10").unwrap_err(),
            "kubelet-extra-args has a bad token \"--max-pods=10\" (write key=value without leading dashes)"
        );
        assert_eq!(
            parse_extra_args("proxy-extra-args", "=3").unwrap_err(),
            "proxy-extra-args has a bad token \"=3\""
        );
        assert!(parse_extra_args("x", "a\"b=1").is_err());
    }

    #[test]
    fn extra_args_with_quoted_values() {
        let args = parse_extra_args(
            "kubelet-extra-args",
            r#"node-labels="a=b c=d" eviction-hard=memory.available<650Mi dollar=$HOME quote=it's"q" esc="say \"hi\" \\ \n" v=2"#,
        )
        .unwrap();
        assert_eq!(args["node-labels"], "a=b c=d");
        assert_eq!(args["eviction-hard"], "memory.available<650Mi");
        assert_eq!(args["dollar"], "$HOME");
        assert_eq!(args["quote"], r#"it's"q""#);
        assert_eq!(args["esc"], r#"say "hi" \ \n"#);
        assert_eq!(args["v"], "2");
        assert_eq!(
            parse_extra_args("kubelet-extra-args", r#"a="open ended"#).unwrap_err(),
            r#"kubelet-extra-args has an unterminated quote in "a=\"open""#
        );
        assert_eq!(parse_extra_args("x", r#"e="""#).unwrap()["e"], "");
    }

    #[test]
    fn labels() {
        let l = parse_labels("disk=ssd topology.kubernetes.io/zone=z1 empty= gone-").unwrap();
        assert_eq!(l.set["topology.kubernetes.io/zone"], "z1");
        assert_eq!(l.set["empty"], "");
        assert_eq!(l.remove.iter().collect::<Vec<_>>(), vec!["gone"]);
        // The last word on a key wins.
        let l = parse_labels("a=1 a- b- b=2").unwrap();
        assert!(!l.set.contains_key("a") && l.remove.contains("a"));
        assert_eq!(l.set["b"], "2");
        assert!(!l.remove.contains("b"));
        for bad in [
            "noequals",
            "Bad/x-",
            "Bad/x=1",
            "x=-leading",
            "=v",
            &format!("k={}", "a".repeat(64)),
        ] {
            let err = parse_labels(bad).unwrap_err();
            assert!(err.contains(&crate::validate::quoted(bad)), "{err}");
        }
    }
}
