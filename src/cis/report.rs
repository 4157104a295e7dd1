//! The benchmark's report, in kube-bench's two formats: its text output
//! (`kube-bench run --targets node`) and its JSON (`--json`), so that
//! whatever reads kube-bench's reports reads these.

use serde::Serialize;

use super::audit::Audited;
use super::checks::{self, Audit, Check, File, Group, Outcome, Seen, State};

/// One check's result, texts substituted as kube-bench substitutes them.
pub struct Finding {
    pub group: &'static Group,
    pub check: &'static Check,
    pub outcome: Outcome,
    pub audit: String,
    pub audit_config: String,
    pub remediation: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    #[serde(rename = "total_pass")]
    pub pass: usize,
    #[serde(rename = "total_fail")]
    pub fail: usize,
    #[serde(rename = "total_warn")]
    pub warn: usize,
    #[serde(rename = "total_info")]
    pub info: usize,
}

impl Counts {
    fn add(&mut self, state: State) {
        match state {
            State::Pass => self.pass += 1,
            State::Fail => self.fail += 1,
            State::Warn => self.warn += 1,
            State::Info => self.info += 1,
        }
    }
}

pub struct Report {
    pub findings: Vec<Finding>,
    pub counts: Counts,
}

/// Runs every check on what was audited.
pub fn run(audited: &Audited) -> Report {
    let substitute = |text: &str| audited.substitute(text);
    let mut counts = Counts::default();
    let findings: Vec<Finding> = checks::all()
        .map(|(group, check)| {
            let (output, audit) = match check.audit {
                Audit::Mode(file) => (
                    audited.stat_output(file, false),
                    stat_command(audited, file, "permissions=%a"),
                ),
                Audit::Owner(file) => (
                    audited.stat_output(file, true),
                    stat_command(audited, file, "%U:%G"),
                ),
                Audit::Kubelet { .. } => (audited.kubelet.clone(), "/bin/ps -fC kubelet".into()),
            };
            let audit_config = match check.audit {
                Audit::Kubelet { config: true } => substitute("/bin/cat $kubeletconf"),
                _ => String::new(),
            };
            let seen = Seen {
                output: &output,
                config: match &audited.config {
                    Ok((text, parsed)) => Ok((text.as_str(), parsed)),
                    Err(why) => Err(why.as_str()),
                },
                substitute: &substitute,
            };
            let outcome = checks::evaluate(check, &seen);
            counts.add(outcome.state);
            Finding {
                group,
                check,
                outcome,
                audit,
                audit_config,
                remediation: substitute(check.remediation),
            }
        })
        .collect();
    Report { findings, counts }
}

fn stat_command(audited: &Audited, file: File, format: &str) -> String {
    let path = audited
        .paths
        .get(&file)
        .map(String::as_str)
        .unwrap_or_default();
    format!("/bin/sh -c 'if test -e {path}; then stat -c {format} {path}; fi' ")
}

impl Report {
    /// kube-bench's text output: each check's state, then the
    /// remediations of those that failed or warned, then the counts.
    pub fn text(&self) -> String {
        let mut out = format!("[INFO] {} {}\n", checks::CONTROLS_ID, checks::CONTROLS_TEXT);
        let mut group = "";
        for f in &self.findings {
            if f.group.id != group {
                group = f.group.id;
                out += &format!("[INFO] {} {}\n", f.group.id, f.group.text);
            }
            out += &format!(
                "[{}] {} {}\n",
                f.outcome.state.word(),
                f.check.id,
                f.check.text
            );
        }
        out.push('\n');
        if self.counts.fail > 0 || self.counts.warn > 0 {
            out += "== Remediations node ==\n";
            for f in &self.findings {
                if matches!(f.outcome.state, State::Fail | State::Warn) {
                    out += &format!("{} {}\n", f.check.id, f.remediation);
                }
            }
            out.push('\n');
        }
        out + &self.summary()
    }

    /// The counts, as kube-bench prints them for the target and in total
    /// (today's action's `summary`).
    pub fn summary(&self) -> String {
        let c = self.counts;
        let section = |name: &str| {
            format!(
                "== Summary {name} ==\n{} checks PASS\n{} checks FAIL\n{} checks WARN\n{} checks INFO\n\n",
                c.pass, c.fail, c.warn, c.info
            )
        };
        section("node") + &section("total")
    }

    /// The checks that did not pass, by state: `FAIL: 4.1.5; WARN: 4.2.8`.
    pub fn not_passed(&self) -> String {
        let mut parts = Vec::new();
        for state in [State::Fail, State::Warn, State::Info] {
            let ids: Vec<&str> = self
                .findings
                .iter()
                .filter(|f| f.outcome.state == state)
                .map(|f| f.check.id)
                .collect();
            if !ids.is_empty() {
                parts.push(format!("{}: {}", state.word(), ids.join(", ")));
            }
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("; ")
        }
    }

    /// kube-bench's `--json` output.
    pub fn json(&self) -> String {
        let mut tests: Vec<JsonGroup> = Vec::new();
        for f in &self.findings {
            if tests.last().map(|g| g.section) != Some(f.group.id) {
                tests.push(JsonGroup {
                    section: f.group.id,
                    kind: "",
                    pass: 0,
                    fail: 0,
                    warn: 0,
                    info: 0,
                    desc: f.group.text,
                    results: Vec::new(),
                });
            }
            let Some(group) = tests.last_mut() else {
                continue;
            };
            match f.outcome.state {
                State::Pass => group.pass += 1,
                State::Fail => group.fail += 1,
                State::Warn => group.warn += 1,
                State::Info => group.info += 1,
            }
            group.results.push(JsonCheck {
                test_number: f.check.id,
                test_desc: f.check.text,
                audit: &f.audit,
                audit_config: &f.audit_config,
                kind: "",
                remediation: &f.remediation,
                test_info: [&f.remediation],
                status: f.outcome.state,
                actual_value: &f.outcome.actual,
                scored: f.check.scored,
                expected_result: &f.outcome.expected,
            });
        }
        let doc = JsonDoc {
            controls: [JsonControls {
                id: checks::CONTROLS_ID,
                version: checks::VERSION,
                text: checks::CONTROLS_TEXT,
                node_type: "node",
                tests,
                total_pass: self.counts.pass,
                total_fail: self.counts.fail,
                total_warn: self.counts.warn,
                total_info: self.counts.info,
            }],
            totals: self.counts,
        };
        // Strings, numbers and booleans only: serialising cannot fail.
        serde_json::to_string(&doc).unwrap_or_default() + "\n"
    }
}

#[derive(Serialize)]
struct JsonDoc<'a> {
    #[serde(rename = "Controls")]
    controls: [JsonControls<'a>; 1],
    #[serde(rename = "Totals")]
    totals: Counts,
}

#[derive(Serialize)]
struct JsonControls<'a> {
    id: &'static str,
    version: &'static str,
    text: &'static str,
    node_type: &'static str,
    tests: Vec<JsonGroup<'a>>,
    total_pass: usize,
    total_fail: usize,
    total_warn: usize,
    total_info: usize,
}

#[derive(Serialize)]
struct JsonGroup<'a> {
    section: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    pass: usize,
    fail: usize,
    warn: usize,
    info: usize,
    desc: &'static str,
    results: Vec<JsonCheck<'a>>,
}

#[derive(Serialize)]
struct JsonCheck<'a> {
    test_number: &'static str,
    test_desc: &'static str,
    audit: &'a str,
    #[serde(rename = "AuditConfig")]
    audit_config: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    remediation: &'a str,
    test_info: [&'a str; 1],
    status: State,
    actual_value: &'a str,
    scored: bool,
    expected_result: &'a str,
}
