//! Operator-written flag lists and labels: `kubelet-extra-args`,
//! `proxy-extra-args` ("v=2 node-labels=a=b flag") and `labels`
//! ("k=v k2=v2"). A bad token is reported quoted, so the operator sees
//! exactly what to fix.

use std::collections::BTreeMap;

/// Parses space-separated `key=value` or bare `flag` (meaning `true`).
pub fn parse_extra_args(option: &str, text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut args = BTreeMap::new();
    for token in text.split_whitespace() {
        let (key, value) = match token.split_once('=') {
            Some((k, v)) => (k, v),
            None => (token, "true"),
        };
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
            return Err(format!("{option} has a bad token {token:?}{hint}"));
        }
        args.insert(key.to_string(), value.to_string());
    }
    Ok(args)
}

/// Parses `labels`: space-separated `key=value`, each valid for Kubernetes.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for token in text.split_whitespace() {
        let bad = |why: &str| format!("labels has a bad label {token:?}: {why}");
        let (key, value) = token
            .split_once('=')
            .ok_or_else(|| bad("expected key=value"))?;
        let name = match key.split_once('/') {
            Some((prefix, name)) => {
                if !is_dns_subdomain(prefix) {
                    return Err(bad("the prefix must be a DNS subdomain"));
                }
                name
            }
            None => key,
        };
        if !is_label_word(name) || name.is_empty() {
            return Err(bad("the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"));
        }
        if !value.is_empty() && !is_label_word(value) {
            return Err(bad("the value must be at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"));
        }
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(labels)
}

fn is_label_word(s: &str) -> bool {
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
    fn labels() {
        let l = parse_labels("disk=ssd topology.kubernetes.io/zone=z1 empty=").unwrap();
        assert_eq!(l["topology.kubernetes.io/zone"], "z1");
        assert_eq!(l["empty"], "");
        for bad in [
            "noequals",
            "Bad/x=1",
            "x=-leading",
            "=v",
            &format!("k={}", "a".repeat(64)),
        ] {
            let err = parse_labels(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
