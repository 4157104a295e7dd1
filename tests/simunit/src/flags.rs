//! Command-line parsing as Juju's hook tools do it (gnuflag, interspersed):
//! `--format=json` or `--format json`, `-r 3`, flags and arguments in any
//! order, `--` ends flags, a lone `-` is an argument. Errors read as Juju's.

use std::collections::BTreeMap;

/// One flag: its names (`["r", "relation"]`) and whether it takes a value.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub names: &'static [&'static str],
    pub takes_value: bool,
}

pub const fn value(names: &'static [&'static str]) -> Flag {
    Flag {
        names,
        takes_value: true,
    }
}

pub const fn boolean(names: &'static [&'static str]) -> Flag {
    Flag {
        names,
        takes_value: false,
    }
}

#[derive(Debug, Default)]
pub struct Parsed {
    /// By the flag's first name.
    pub values: BTreeMap<&'static str, String>,
    pub positional: Vec<String>,
}

impl Parsed {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
    pub fn is_set(&self, name: &str) -> bool {
        self.values.get(name).is_some_and(|v| v != "false")
    }
}

fn dashes(name: &str) -> String {
    if name.chars().count() == 1 {
        format!("-{name}")
    } else {
        format!("--{name}")
    }
}

/// Parses `args` against `flags`; the error is the usage message (exit 2).
pub fn parse(args: &[String], flags: &[Flag]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            parsed.positional.extend(args[i..].iter().cloned());
            break;
        }
        let body = if let Some(b) = arg.strip_prefix("--") {
            b
        } else if let Some(b) = arg.strip_prefix('-') {
            if b.is_empty() {
                parsed.positional.push(arg.clone());
                continue;
            }
            b
        } else {
            parsed.positional.push(arg.clone());
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let flag = flags
            .iter()
            .find(|f| f.names.contains(&name))
            .ok_or_else(|| format!("option provided but not defined: {}", dashes(name)))?;
        let value = if flag.takes_value {
            match inline {
                Some(v) => v,
                None => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| format!("option needs an argument: {}", dashes(name)))?;
                    i += 1;
                    v.clone()
                }
            }
        } else {
            match inline.as_deref() {
                None | Some("true") => "true".to_string(),
                Some("false") => "false".to_string(),
                Some(v) => {
                    return Err(format!(
                        "invalid value {v:?} for flag {}: parse error",
                        dashes(name)
                    ))
                }
            }
        };
        parsed.values.insert(flag.names[0], value);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    const FLAGS: &[Flag] = &[
        value(&["format"]),
        value(&["r", "relation"]),
        boolean(&["app"]),
    ];

    #[test]
    fn gnu_style() {
        let p = parse(
            &args(&["-", "--format", "json", "x/0", "-r=db:3", "--app"]),
            FLAGS,
        )
        .unwrap();
        assert_eq!(p.get("format"), Some("json"));
        assert_eq!(p.get("r"), Some("db:3"));
        assert!(p.is_set("app"));
        assert_eq!(p.positional, args(&["-", "x/0"]));
    }

    #[test]
    fn double_dash_ends_flags() {
        let p = parse(&args(&["--", "--format", "-r"]), FLAGS).unwrap();
        assert_eq!(p.positional, args(&["--format", "-r"]));
    }

    #[test]
    fn errors_read_as_juju() {
        assert_eq!(
            parse(&args(&["--foo"]), FLAGS).unwrap_err(),
            "option provided but not defined: --foo"
        );
        assert_eq!(
            parse(&args(&["-x"]), FLAGS).unwrap_err(),
            "option provided but not defined: -x"
        );
        assert_eq!(
            parse(&args(&["--format"]), FLAGS).unwrap_err(),
            "option needs an argument: --format"
        );
    }
}
