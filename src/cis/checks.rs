//! The worker-node checks of CIS Kubernetes Benchmark 1.23 as
//! charmed-kubernetes/kube-bench-config adjusts them for snap-installed
//! daemons (its `cis-1.23/node.yaml`), and how kube-bench evaluates them
//! (its `check/check.go` and `check/test.go`). `$name` in a text is one of
//! kube-bench's substitutions ([`super::audit::Paths`]).

/// A check's outcome, as kube-bench names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum State {
    #[serde(rename = "PASS")]
    Pass,
    #[serde(rename = "FAIL")]
    Fail,
    #[serde(rename = "WARN")]
    Warn,
    #[serde(rename = "INFO")]
    Info,
}

impl State {
    pub fn word(self) -> &'static str {
        match self {
            State::Pass => "PASS",
            State::Fail => "FAIL",
            State::Warn => "WARN",
            State::Info => "INFO",
        }
    }
}

/// What a check's audit command reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// `stat -c permissions=%a <file>`, nothing when it does not exist.
    Mode(File),
    /// `stat -c %U:%G <file>`, nothing when it does not exist.
    Owner(File),
    /// `ps -fC kubelet`; with `config`, kubelet's config file is read
    /// where the command line does not satisfy the tests.
    Kubelet { config: bool },
}

/// The files the checks look at, by kube-bench's variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum File {
    /// `$kubeletsvc`.
    KubeletService,
    /// `$proxykubeconfig`.
    ProxyKubeconfig,
    /// `$kubeletkubeconfig`.
    KubeletKubeconfig,
    /// kubelet's `--client-ca-file`, else `$kubeletcafile`.
    ClientCa,
    /// `$kubeletconf`.
    KubeletConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    NotEq,
    NotHave,
    Bitmask,
    ValidElements,
}

/// One of a check's `test_items`.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    pub flag: &'static str,
    /// A JSONPath into kubelet's config file (`{.a.b}`), or "".
    pub path: &'static str,
    pub set: bool,
    pub compare: Option<(Op, &'static str)>,
}

#[derive(Debug)]
pub struct Check {
    pub id: &'static str,
    pub text: &'static str,
    pub audit: Audit,
    pub items: &'static [Item],
    /// `bin_op: or` (else and).
    pub or: bool,
    pub remediation: &'static str,
    pub scored: bool,
}

pub struct Group {
    pub id: &'static str,
    pub text: &'static str,
    pub checks: &'static [Check],
}

pub const VERSION: &str = "cis-1.23";
pub const CONTROLS_ID: &str = "4";
pub const CONTROLS_TEXT: &str = "Worker Node Security Configuration";

/// kube-bench-config's `cis-1.23/node.yaml` 4.2.13: the ciphers allowed.
pub const STRONG_CIPHERS: &str = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_RSA_WITH_AES_256_GCM_SHA384,TLS_RSA_WITH_AES_128_GCM_SHA256";

const fn flag(flag: &'static str, path: &'static str, op: Op, value: &'static str) -> Item {
    Item {
        flag,
        path,
        set: true,
        compare: Some((op, value)),
    }
}

const fn present(flag: &'static str, path: &'static str) -> Item {
    Item {
        flag,
        path,
        set: true,
        compare: None,
    }
}

const fn absent(flag: &'static str, path: &'static str) -> Item {
    Item {
        flag,
        path,
        set: false,
        compare: None,
    }
}

const MODE_644: &[Item] = &[flag("permissions", "", Op::Bitmask, "644")];
const ROOT_OWNED: &[Item] = &[present("root:root", "")];

const fn kubelet(
    id: &'static str,
    text: &'static str,
    items: &'static [Item],
    or: bool,
    remediation: &'static str,
    scored: bool,
) -> Check {
    Check {
        id,
        text,
        audit: Audit::Kubelet { config: true },
        items,
        or,
        remediation,
        scored,
    }
}

pub const GROUPS: [Group; 2] = [
    Group {
        id: "4.1",
        text: "Worker Node Configuration Files",
        checks: &[
            Check {
                id: "4.1.1",
                text: "Ensure that the kubelet service file permissions are set to 644 or more restrictive (Automated)",
                audit: Audit::Mode(File::KubeletService),
                items: MODE_644,
                or: false,
                remediation: "Run the below command (based on the file location on your system) on the each worker node.\nFor example, chmod 644 $kubeletsvc\n",
                scored: true,
            },
            Check {
                id: "4.1.2",
                text: "Ensure that the kubelet service file ownership is set to root:root (Automated)",
                audit: Audit::Owner(File::KubeletService),
                items: ROOT_OWNED,
                or: false,
                remediation: "Run the below command (based on the file location on your system) on the each worker node.\nFor example,\nchown root:root $kubeletsvc\n",
                scored: true,
            },
            Check {
                id: "4.1.3",
                text: "If proxy kubeconfig file exists ensure permissions are set to 644 or more restrictive (Manual)",
                audit: Audit::Mode(File::ProxyKubeconfig),
                items: &[
                    flag("permissions", "", Op::Bitmask, "644"),
                    absent("$proxykubeconfig", ""),
                ],
                or: true,
                remediation: "Run the below command (based on the file location on your system) on the each worker node.\nFor example,\nchmod 644 $proxykubeconfig\n",
                scored: false,
            },
            Check {
                id: "4.1.4",
                text: "If proxy kubeconfig file exists ensure ownership is set to root:root (Manual)",
                audit: Audit::Owner(File::ProxyKubeconfig),
                items: &[present("root:root", ""), absent("$proxykubeconfig", "")],
                or: true,
                remediation: "Run the below command (based on the file location on your system) on the each worker node.\nFor example, chown root:root $proxykubeconfig\n",
                scored: false,
            },
            Check {
                id: "4.1.5",
                text: "Ensure that the --kubeconfig kubelet.conf file permissions are set to 644 or more restrictive (Automated)",
                audit: Audit::Mode(File::KubeletKubeconfig),
                items: MODE_644,
                or: false,
                remediation: "Run the below command (based on the file location on your system) on the each worker node.\nFor example,\nchmod 644 $kubeletkubeconfig\n",
                scored: true,
            },
            Check {
                id: "4.1.6",
                text: "Ensure that the --kubeconfig kubelet.conf file ownership is set to root:root (Automated)",
                audit: Audit::Owner(File::KubeletKubeconfig),
                items: ROOT_OWNED,
                or: false,
                remediation: "Run the below command (based on the file location on your system) on the each worker node.\nFor example,\nchown root:root $kubeletkubeconfig\n",
                scored: true,
            },
            Check {
                id: "4.1.7",
                text: "Ensure that the certificate authorities file permissions are set to 644 or more restrictive (Manual)",
                audit: Audit::Mode(File::ClientCa),
                items: MODE_644,
                or: false,
                remediation: "Run the following command to modify the file permissions of the\n--client-ca-file chmod 644 <filename>\n",
                scored: false,
            },
            Check {
                id: "4.1.8",
                text: "Ensure that the client certificate authorities file ownership is set to root:root (Manual)",
                audit: Audit::Owner(File::ClientCa),
                items: &[flag("root:root", "", Op::Eq, "root:root")],
                or: false,
                remediation: "Run the following command to modify the ownership of the --client-ca-file.\nchown root:root <filename>\n",
                scored: false,
            },
            Check {
                id: "4.1.9",
                text: "Ensure that the kubelet --config configuration file has permissions set to 644 or more restrictive (Automated)",
                audit: Audit::Mode(File::KubeletConfig),
                items: MODE_644,
                or: false,
                remediation: "Run the following command (using the config file location identified in the Audit step)\nchmod 644 $kubeletconf\n",
                scored: true,
            },
            Check {
                id: "4.1.10",
                text: "Ensure that the kubelet --config configuration file ownership is set to root:root (Automated)",
                audit: Audit::Owner(File::KubeletConfig),
                items: ROOT_OWNED,
                or: false,
                remediation: "Run the following command (using the config file location identified in the Audit step)\nchown root:root $kubeletconf\n",
                scored: true,
            },
        ],
    },
    Group {
        id: "4.2",
        text: "Kubelet",
        checks: &[
            kubelet(
                "4.2.1",
                "Ensure that the --anonymous-auth argument is set to false (Automated)",
                &[flag("--anonymous-auth", "{.authentication.anonymous.enabled}", Op::Eq, "false")],
                false,
                "If using a Kubelet config file, edit the file to set `authentication: anonymous: enabled` to\n`false`.\nIf using executable arguments, edit the kubelet service file\n$kubeletsvc on each worker node and\nset the below parameter in KUBELET_SYSTEM_PODS_ARGS variable.\n`--anonymous-auth=false`\nBased on your system, restart the kubelet service. For example,\nsystemctl daemon-reload\nsystemctl restart kubelet.service\n",
                true,
            ),
            kubelet(
                "4.2.2",
                "Ensure that the --authorization-mode argument is not set to AlwaysAllow (Automated)",
                &[flag("--authorization-mode", "{.authorization.mode}", Op::NotHave, "AlwaysAllow")],
                false,
                "If using a Kubelet config file, edit the file to set `authorization.mode` to Webhook. If\nusing executable arguments, edit the kubelet service file\n$kubeletsvc on each worker node and\nset the below parameter in KUBELET_AUTHZ_ARGS variable.\n--authorization-mode=Webhook\nBased on your system, restart the kubelet service. For example,\nsystemctl daemon-reload\nsystemctl restart kubelet.service\n",
                true,
            ),
            kubelet(
                "4.2.3",
                "Ensure that the --client-ca-file argument is set as appropriate (Automated)",
                &[present("--client-ca-file", "{.authentication.x509.clientCAFile}")],
                false,
                "If using a Kubelet config file, edit the file to set `authentication.x509.clientCAFile` to\nthe location of the client CA file.\nIf using command line arguments, edit the kubelet service file\n$kubeletsvc on each worker node and\nset the below parameter in KUBELET_AUTHZ_ARGS variable.\n--client-ca-file=<path/to/client-ca-file>\nBased on your system, restart the kubelet service. For example,\nsystemctl daemon-reload\nsystemctl restart kubelet.service\n",
                true,
            ),
            kubelet(
                "4.2.4",
                "Ensure that the --read-only-port argument is set to 0 (Manual)",
                &[
                    flag("--read-only-port", "{.readOnlyPort}", Op::Eq, "0"),
                    absent("--read-only-port", "{.readOnlyPort}"),
                ],
                true,
                "If using a Kubelet config file, edit the file to set `readOnlyPort` to 0.\nIf using command line arguments, edit the kubelet service file\n$kubeletsvc on each worker node and\nset the below parameter in KUBELET_SYSTEM_PODS_ARGS variable.\n--read-only-port=0\nBased on your system, restart the kubelet service. For example,\nsystemctl daemon-reload\nsystemctl restart kubelet.service\n",
                false,
            ),
            kubelet(
                "4.2.5",
                "Ensure that the --streaming-connection-idle-timeout argument is not set to 0 (Manual)",
                &[
                    flag("--streaming-connection-idle-timeout", "{.streamingConnectionIdleTimeout}", Op::NotEq, "0"),
                    absent("--streaming-connection-idle-timeout", "{.streamingConnectionIdleTimeout}"),
                ],
                true,
                "If using a Kubelet config file, edit the file to set `streamingConnectionIdleTimeout` to a\nvalue other than 0.\nIf using command line arguments, edit the kubelet service file\n$kubeletsvc on each worker node and\nset the below parameter in KUBELET_SYSTEM_PODS_ARGS variable.\n--streaming-connection-idle-timeout=5m\nBased on your system, restart the kubelet service. For example,\nsystemctl daemon-reload\nsystemctl restart kubelet.service\n",
                false,
            ),
            kubelet(
                "4.2.6",
                "Ensure that the --protect-kernel-defaults argument is set to true (Automated)",
                &[flag("--protect-kernel-defaults", "{.protectKernelDefaults}", Op::Eq, "true")],
                false,
                "If using a Kubelet config file, edit the file to set `protectKernelDefaults` to `true`.\nIf using command line arguments, edit the kubelet service file\n$kubeletsvc on each worker node and\nset the below parameter in KUBELET_SYSTEM_PODS_ARGS variable.\n--protect-kernel-defaults=true\nBased on your system, restart the kubelet service. For example:\nsystemctl daemon-reload\nsystemctl restart kubelet.service\n",
                true,
            ),
            kubelet(
                "4.2.7",
                "Ensure that the --make-iptables-util-chains argument is set to true (Automated)",
                &[
                    flag("--make-iptables-util-chains", "{.makeIPTablesUtilChains}", Op::Eq, "true"),
                    absent("--make-iptables-util-chains", "{.makeIPTablesUtilChains}"),
                ],
                true,
                "If using a Kubelet config file, edit the file to set `makeIPTablesUtilChains` to `true`.\nIf using command line arguments, edit the kubelet service file\n$kubeletsvc on each worker node and\nremove the --make-iptables-util-chains argument from the\nKUBELET_SYSTEM_PODS_ARGS variable.\nBased on your system, restart the kubelet service. For example:\nsystemctl daemon-reload\nsystemctl restart kubelet.service\n",
                true,
            ),
            Check {
                id: "4.2.8",
                text: "Ensure that the --hostname-override argument is not set (Manual)",
                // Only a command-line flag: kubelet's config file has no
                // such field.
                audit: Audit::Kubelet { config: false },
                items: &[absent("--hostname-override", "")],
                or: false,
                remediation: "Edit the kubelet service file $kubeletsvc\non each worker node and remove the --hostname-override argument from the\nKUBELET_SYSTEM_PODS_ARGS variable.\nBased on your system, restart the kubelet service. For example,\nsystemctl daemon-reload\nsystemctl restart kubelet.service\n",
                scored: false,
            },
            kubelet(
                "4.2.9",
                "Ensure that the --event-qps argument is set to 0 or a level which ensures appropriate event capture (Manual)",
                &[flag("--event-qps", "{.eventRecordQPS}", Op::Eq, "0")],
                false,
                "If using a Kubelet config file, edit the file to set `eventRecordQPS` to an appropriate level.\nIf using command line arguments, edit the kubelet service file\n$kubeletsvc on each worker node and\nset the below parameter in KUBELET_SYSTEM_PODS_ARGS variable.\nBased on your system, restart the kubelet service. For example,\nsystemctl daemon-reload\nsystemctl restart kubelet.service\n",
                false,
            ),
            kubelet(
                "4.2.10",
                "Ensure that the --tls-cert-file and --tls-private-key-file arguments are set as appropriate (Manual)",
                &[
                    present("--tls-cert-file", "{.tlsCertFile}"),
                    present("--tls-private-key-file", "{.tlsPrivateKeyFile}"),
                ],
                false,
                "If using a Kubelet config file, edit the file to set `tlsCertFile` to the location\nof the certificate file to use to identify this Kubelet, and `tlsPrivateKeyFile`\nto the location of the corresponding private key file.\nIf using command line arguments, edit the kubelet service file\n$kubeletsvc on each worker node and\nset the below parameters in KUBELET_CERTIFICATE_ARGS variable.\n--tls-cert-file=<path/to/tls-certificate-file>\n--tls-private-key-file=<path/to/tls-key-file>\nBased on your system, restart the kubelet service. For example,\nsystemctl daemon-reload\nsystemctl restart kubelet.service\n",
                false,
            ),
            kubelet(
                "4.2.11",
                "Ensure that the --rotate-certificates argument is not set to false (Automated)",
                &[
                    flag("--rotate-certificates", "{.rotateCertificates}", Op::Eq, "true"),
                    absent("--rotate-certificates", "{.rotateCertificates}"),
                ],
                true,
                "If using a Kubelet config file, edit the file to add the line `rotateCertificates` to `true` or\nremove it altogether to use the default value.\nIf using command line arguments, edit the kubelet service file\n$kubeletsvc on each worker node and\nremove --rotate-certificates=false argument from the KUBELET_CERTIFICATE_ARGS\nvariable.\nBased on your system, restart the kubelet service. For example,\nsystemctl daemon-reload\nsystemctl restart kubelet.service\n",
                true,
            ),
            kubelet(
                "4.2.12",
                "Verify that the RotateKubeletServerCertificate argument is set to true (Manual)",
                &[
                    flag("RotateKubeletServerCertificate", "{.featureGates.RotateKubeletServerCertificate}", Op::NotHave, "false"),
                    absent("RotateKubeletServerCertificate", "{.featureGates.RotateKubeletServerCertificate}"),
                ],
                true,
                "Edit the kubelet service file $kubeletsvc\non each worker node and set the below parameter in KUBELET_CERTIFICATE_ARGS variable.\n--feature-gates=RotateKubeletServerCertificate=true\nBased on your system, restart the kubelet service. For example:\nsystemctl daemon-reload\nsystemctl restart kubelet.service\n",
                false,
            ),
            kubelet(
                "4.2.13",
                "Ensure that the Kubelet only makes use of Strong Cryptographic Ciphers (Manual)",
                &[flag("--tls-cipher-suites", CIPHERS_PATH, Op::ValidElements, STRONG_CIPHERS)],
                false,
                "If using a Kubelet config file, edit the file to set `TLSCipherSuites` to\nTLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_RSA_WITH_AES_256_GCM_SHA384,TLS_RSA_WITH_AES_128_GCM_SHA256\nor to a subset of these values.\nIf using executable arguments, edit the kubelet service file\n$kubeletsvc on each worker node and\nset the --tls-cipher-suites parameter as follows, or to a subset of these values.\n--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_RSA_WITH_AES_256_GCM_SHA384,TLS_RSA_WITH_AES_128_GCM_SHA256\nBased on your system, restart the kubelet service. For example:\nsystemctl daemon-reload\nsystemctl restart kubelet.service\n",
                false,
            ),
        ],
    },
];

/// 4.2.13's path: every element of the list, each followed by a comma.
pub const CIPHERS_PATH: &str = "{range .tlsCipherSuites[:]}{}{','}{end}";

/// kube-bench's result of one check: its state, what the audit showed,
/// and what the tests expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub state: State,
    pub actual: String,
    pub expected: String,
}

/// What the audit commands of a check printed: the command's output, and
/// kubelet's config file where the check reads it.
pub struct Seen<'a> {
    pub output: &'a str,
    /// `cat <kubelet's config file>`: its text read as YAML (kube-bench's
    /// unmarshal) and the text itself; or cat's complaint, when it could
    /// not be read (kube-bench's audit then fails).
    pub config: Result<(&'a str, &'a Parsed), &'a str>,
    /// `$proxykubeconfig` and the like, for the flags that name a file.
    pub substitute: &'a dyn Fn(&str) -> String,
}

/// kubelet's config file as kube-bench reads it: JSON or YAML, or why it
/// is neither (every test item on it then fails).
pub type Parsed = Result<serde_yaml::Value, String>;

/// One test item's result (kube-bench's `testOutput`).
struct ItemResult {
    passed: bool,
    expected: String,
    /// The flag (or path) was found where the item looked.
    found: bool,
}

/// The check as kube-bench v0.6.8 runs it (`check.go`, `test.go`), item by
/// item: each item is tried on the command's output, and only where its
/// flag is not found there, and the check has an audit_config, on the
/// config file by its JSONPath. A flag found on the command line decides
/// its item, whatever the file says. The items combine by the check's
/// bin_op. A failed scored check FAILs, an unscored one WARNs; a config
/// file that cannot be read fails the check's audit, so the check.
pub fn evaluate(check: &Check, seen: &Seen) -> Outcome {
    let config = match (check.audit, seen.config) {
        (Audit::Kubelet { config: true }, Ok(config)) => Some(config),
        (Audit::Kubelet { config: true }, Err(_)) => {
            return Outcome {
                state: failed(false, check.scored),
                actual: String::new(),
                expected: String::new(),
            }
        }
        _ => None,
    };
    let output = seen.output.trim_end_matches([' ', '\n']);
    let mut actual = None;
    let mut results = Vec::new();
    for item in check.items {
        let flag = (seen.substitute)(item.flag);
        let mut result = evaluate_flag(item, &flag, output);
        let mut used = output;
        if let (false, Some((text, parsed))) = (result.found, config) {
            result = evaluate_path(item, parsed);
            used = text.trim_end_matches([' ', '\n']);
        }
        // The first item's output is the check's actual value.
        actual.get_or_insert(used);
        results.push(result);
    }
    let passed = if check.or {
        results.iter().any(|r| r.passed)
    } else {
        results.iter().all(|r| r.passed)
    };
    let expected: Vec<&str> = results.iter().map(|r| r.expected.as_str()).collect();
    Outcome {
        state: failed(passed, check.scored),
        actual: actual.unwrap_or(output).to_string(),
        expected: expected.join(if check.or { " OR " } else { " AND " }),
    }
}

fn failed(passed: bool, scored: bool) -> State {
    match (passed, scored) {
        (true, _) => State::Pass,
        (false, true) => State::Fail,
        (false, false) => State::Warn,
    }
}

/// A test item on command output: found if the output contains the flag;
/// its value what kube-bench's `(flag)(=|: *)*([^\s]*) *` takes from the
/// first place the flag appears, else `true` for a bare `--flag` (so also
/// for `--flag value`: the value is not read), else the flag itself.
fn evaluate_flag(item: &Item, flag: &str, output: &str) -> ItemResult {
    let value = (!output.is_empty() && !flag.is_empty())
        .then(|| flag_value(flag, output))
        .flatten();
    judge(item, flag, value)
}

fn flag_value(flag: &str, output: &str) -> Option<String> {
    let at = output.find(flag)?;
    let mut after = &output[at + flag.len()..];
    // `(=|: *)*`
    loop {
        if let Some(r) = after.strip_prefix('=') {
            after = r;
        } else if let Some(r) = after.strip_prefix(':') {
            after = r.trim_start_matches(' ');
        } else {
            break;
        }
    }
    // `[^\s]*`, Go's `\s` being ASCII: a no-break space or a vertical tab
    // is part of the value.
    let word: String = after
        .chars()
        .take_while(|c| !matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' '))
        .collect();
    Some(if !word.is_empty() {
        word
    } else if flag.starts_with("--") {
        "true".to_string()
    } else {
        flag.to_string()
    })
}

/// A test item on kubelet's config file, by its JSONPath: found if the
/// path prints anything. A file that is neither JSON nor YAML fails the
/// item, with no expected result (kube-bench's `failTestItem`).
fn evaluate_path(item: &Item, parsed: &Parsed) -> ItemResult {
    match parsed {
        Ok(config) => match json_path(config, item.path) {
            Ok(value) => judge(item, item.path, value.filter(|v| !v.is_empty())),
            Err(()) => ItemResult {
                passed: false,
                expected: String::new(),
                found: false,
            },
        },
        Err(_) => ItemResult {
            passed: false,
            expected: String::new(),
            found: false,
        },
    }
}

/// kube-bench's verdict on an item, given the value found (if any), and
/// its expected-result text naming `name` (the flag or the path).
fn judge(item: &Item, name: &str, value: Option<String>) -> ItemResult {
    let found = value.is_some();
    let (passed, expected) = if !item.set {
        (!found, format!("'{name}' is not present"))
    } else {
        match (value, item.compare) {
            (Some(value), Some((op, want))) => compare(op, &value, want, name),
            (_, _) => (found, format!("'{name}' is present")),
        }
    };
    ItemResult {
        passed,
        expected,
        found,
    }
}

fn compare(op: Op, value: &str, want: &str, name: &str) -> (bool, String) {
    let lower = value.to_lowercase();
    let boolean = lower == "true" || lower == "false";
    let given = if boolean { lower.as_str() } else { value };
    match op {
        Op::Eq => (given == want, format!("'{name}' is equal to '{want}'")),
        Op::NotEq => (given != want, format!("'{name}' is not equal to '{want}'")),
        Op::NotHave => (
            !value.contains(want),
            format!("'{name}' does not have '{want}'"),
        ),
        Op::Bitmask => {
            let expected =
                format!("{name} has permissions {value}, expected {want} or more restrictive");
            match (u32::from_str_radix(value, 8), u32::from_str_radix(want, 8)) {
                (Ok(mode), Ok(max)) => (max & mode == mode, expected),
                _ => (false, format!("Not numeric value - flag: {value}")),
            }
        }
        Op::ValidElements => {
            let split = |s: &str| -> Vec<String> {
                let clean = s.trim().trim_end_matches(',');
                if clean.is_empty() {
                    Vec::new()
                } else {
                    clean.split(',').map(|e| e.trim().to_string()).collect()
                }
            };
            let (have, allowed) = (split(value), split(want));
            let valid = if have.is_empty() || allowed.is_empty() {
                have.is_empty() && allowed.is_empty()
            } else {
                have.iter().all(|h| allowed.contains(h))
            };
            (
                valid,
                format!("'{name}' contains valid elements from '{want}'"),
            )
        }
    }
}

/// The few JSONPath forms the checks use: `{.a.b.c}`, and 4.2.13's list
/// printed element by element, each followed by a comma. Missing keys
/// print nothing (kube-bench allows them); `Err`: the path cannot apply
/// (client-go's "not array or slice" for a range over something else).
fn json_path(config: &serde_yaml::Value, path: &str) -> Result<Option<String>, ()> {
    if path.is_empty() {
        return Ok(None);
    }
    if path == CIPHERS_PATH {
        return match config.get("tlsCipherSuites") {
            None | Some(serde_yaml::Value::Null) => Ok(None),
            Some(serde_yaml::Value::Sequence(list)) => Ok(Some(
                list.iter().map(|e| format!("{},", scalar(e))).collect(),
            )),
            Some(_) => Err(()),
        };
    }
    let Some(keys) = path.strip_prefix("{.").and_then(|p| p.strip_suffix('}')) else {
        return Err(());
    };
    let mut value = config;
    for key in keys.split('.') {
        match value.get(key) {
            Some(v) => value = v,
            None => return Ok(None),
        }
    }
    Ok(Some(scalar(value)))
}

/// A value as client-go's JSONPath prints it (Go's `fmt.Fprint`): scalars
/// bare, null as nothing, a map as `map[k:v ...]` by sorted keys, a list
/// as `[a b]`.
fn scalar(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::Null => String::new(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(scalar).collect();
            format!("[{}]", items.join(" "))
        }
        serde_yaml::Value::Mapping(map) => {
            let mut entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", scalar(k), scalar(v)))
                .collect();
            entries.sort();
            format!("map[{}]", entries.join(" "))
        }
        serde_yaml::Value::Tagged(tagged) => scalar(&tagged.value),
    }
}

/// Every check, with its group.
pub fn all() -> impl Iterator<Item = (&'static Group, &'static Check)> {
    GROUPS
        .iter()
        .flat_map(|g| g.checks.iter().map(move |c| (g, c)))
}
