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
    /// `cat <kubelet's config file>`: its text (or cat's complaint), and
    /// that read as YAML (kube-bench's unmarshal).
    pub config: (&'a str, &'a serde_yaml::Value),
    /// `$proxykubeconfig` and the like, for the flags that name a file.
    pub substitute: &'a dyn Fn(&str) -> String,
}

/// The check as kube-bench runs it: the tests on the command's output;
/// where they fail and the check has an audit_config, the same tests by
/// their paths on the config file. A failed scored check FAILs; an
/// unscored one WARNs.
pub fn evaluate(check: &Check, seen: &Seen) -> Outcome {
    let output = seen.output.trim_end_matches([' ', '\n']);
    let (mut passed, mut expected) = run_items(check, |item| {
        evaluate_flag(item, &(seen.substitute)(item.flag), output)
    });
    let mut actual = output.to_string();
    if let (false, Audit::Kubelet { config: true }) = (passed, check.audit) {
        let (text, config) = seen.config;
        (passed, expected) = run_items(check, |item| evaluate_path(item, config));
        actual = text.trim_end_matches([' ', '\n']).to_string();
    }
    let state = match (passed, check.scored) {
        (true, _) => State::Pass,
        (false, true) => State::Fail,
        (false, false) => State::Warn,
    };
    Outcome {
        state,
        actual,
        expected,
    }
}

/// The items combined by the check's bin_op; the expected results joined
/// as kube-bench joins them.
fn run_items(check: &Check, mut one: impl FnMut(&Item) -> (bool, String)) -> (bool, String) {
    let results: Vec<(bool, String)> = check.items.iter().map(&mut one).collect();
    let (passed, joiner) = if check.or {
        (results.iter().any(|r| r.0), " OR ")
    } else {
        (results.iter().all(|r| r.0), " AND ")
    };
    let expected: Vec<&str> = results.iter().map(|r| r.1.as_str()).collect();
    (passed, expected.join(joiner))
}

/// A test item on command output: found if the output contains the flag;
/// its value what follows `=` or `:` up to white space, else (when
/// compared) the next word that is not a flag, else `true` for a `--flag`.
fn evaluate_flag(item: &Item, flag: &str, output: &str) -> (bool, String) {
    let value = (!output.is_empty() && !flag.is_empty())
        .then(|| flag_value(item, flag, output))
        .flatten();
    judge(item, flag, value)
}

fn flag_value(item: &Item, flag: &str, output: &str) -> Option<String> {
    let at = output.find(flag)?;
    let rest = &output[at + flag.len()..];
    // `(=|: *)*`
    let mut after = rest;
    loop {
        if let Some(r) = after.strip_prefix('=') {
            after = r;
        } else if let Some(r) = after.strip_prefix(':') {
            after = r.trim_start_matches(' ');
        } else {
            break;
        }
    }
    let word: String = after.chars().take_while(|c| !c.is_whitespace()).collect();
    if !word.is_empty() {
        return Some(word);
    }
    if item.compare.is_some() {
        // `flag\s+([^\s-][^\s]*)`, anywhere the flag is followed by space.
        let mut from = 0;
        while let Some(i) = output[from..].find(flag) {
            let tail = &output[from + i + flag.len()..];
            let trimmed = tail.trim_start();
            if trimmed.len() < tail.len() && !trimmed.starts_with('-') && !trimmed.is_empty() {
                return Some(trimmed.split_whitespace().next()?.to_string());
            }
            from += i + flag.len();
        }
    }
    Some(if flag.starts_with("--") {
        "true".to_string()
    } else {
        flag.to_string()
    })
}

/// A test item on kubelet's config file, by its JSONPath: found if the
/// path yields anything.
fn evaluate_path(item: &Item, config: &serde_yaml::Value) -> (bool, String) {
    let value = json_path(config, item.path).filter(|v| !v.is_empty());
    judge(item, item.path, value)
}

/// kube-bench's verdict on an item, given the value found (if any), and
/// its expected-result text naming `name` (the flag or the path).
fn judge(item: &Item, name: &str, value: Option<String>) -> (bool, String) {
    if !item.set {
        return (value.is_none(), format!("'{name}' is not present"));
    }
    match (value, item.compare) {
        (Some(value), Some((op, want))) => compare(op, &value, want, name),
        (found, _) => (found.is_some(), format!("'{name}' is present")),
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
/// print nothing (kube-bench allows them).
fn json_path(config: &serde_yaml::Value, path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    if path == CIPHERS_PATH {
        let list = config.get("tlsCipherSuites")?.as_sequence()?;
        return Some(list.iter().map(|e| format!("{},", scalar(e))).collect());
    }
    let keys = path.strip_prefix("{.")?.strip_suffix('}')?;
    let mut value = config;
    for key in keys.split('.') {
        value = value.get(key)?;
    }
    Some(scalar(value))
}

/// A value as JSONPath prints it: scalars bare, null as nothing. No
/// check's path ends on a map or a list (JSONPath would print JSON);
/// those count as found, with a value no comparison matches.
fn scalar(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::Null => String::new(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::String(s) => s.clone(),
        _ => "{...}".into(),
    }
}

/// Every check, with its group.
pub fn all() -> impl Iterator<Item = (&'static Group, &'static Check)> {
    GROUPS
        .iter()
        .flat_map(|g| g.checks.iter().map(move |c| (g, c)))
}
