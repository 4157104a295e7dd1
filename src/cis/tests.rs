//! kube-bench's evaluation, item by item, on the outputs its audit
//! commands print; and every check's verdict against the referee, kube-bench
//! v0.6.8's own rules ([`super::referee`]), on generated command lines and
//! config files.

use proptest::prelude::*;

use super::checks::{self, evaluate, Audit, Check, Outcome, Parsed, Seen, State};
use super::referee;

fn check(id: &str) -> &'static Check {
    checks::all().map(|(_, c)| c).find(|c| c.id == id).unwrap()
}

fn substitute(t: &str) -> String {
    t.replace("$proxykubeconfig", "/root/cdk/kubeproxyconfig")
}

/// The charm's evaluation; `config`: the file's text, `None` when cat
/// cannot read it.
fn evaluated(check: &Check, output: &str, config: Option<&str>) -> Outcome {
    let parsed: Option<Parsed> =
        config.map(|text| serde_yaml::from_str(text).map_err(|e| e.to_string()));
    let seen = Seen {
        output,
        config: match (config, &parsed) {
            (Some(text), Some(parsed)) => Ok((text, parsed)),
            _ => Err("cat: /root/cdk/kubelet/config.yaml: No such file or directory"),
        },
        substitute: &substitute,
    };
    evaluate(check, &seen)
}

fn run(id: &str, output: &str, config: &str) -> Outcome {
    evaluated(check(id), output, Some(config))
}

#[test]
fn twenty_three_checks_numbered_as_the_benchmark() {
    let ids: Vec<&str> = checks::all().map(|(_, c)| c.id).collect();
    assert_eq!(ids.len(), 23);
    assert_eq!(ids[0], "4.1.1");
    assert_eq!(ids[9], "4.1.10");
    assert_eq!(ids[22], "4.2.13");
}

#[test]
fn modes_are_a_bitmask_of_644() {
    assert_eq!(run("4.1.5", "permissions=600\n", "").state, State::Pass);
    let wide = run("4.1.5", "permissions=666\n", "");
    assert_eq!(wide.state, State::Fail);
    assert_eq!(wide.actual, "permissions=666");
    assert_eq!(
        wide.expected,
        "permissions has permissions 666, expected 644 or more restrictive"
    );
    // A missing file prints nothing: scored, it fails.
    assert_eq!(run("4.1.1", "", "").state, State::Fail);
    // 4.1.3 passes whenever the output does not name the file (kube-bench's
    // second item), and an unscored check that fails warns.
    assert_eq!(run("4.1.3", "permissions=777\n", "").state, State::Pass);
    assert_eq!(run("4.1.7", "permissions=664\n", "").state, State::Warn);
}

#[test]
fn owners_are_found_in_the_output() {
    assert_eq!(run("4.1.2", "root:root\n", "").state, State::Pass);
    let other = run("4.1.6", "ubuntu:ubuntu\n", "");
    assert_eq!(other.state, State::Fail);
    assert_eq!(other.expected, "'root:root' is present");
    assert_eq!(run("4.1.8", "root:root\n", "").state, State::Pass);
    assert_eq!(run("4.1.8", "root:ubuntu\n", "").state, State::Warn);
}

#[test]
fn the_command_line_first_then_the_config_file_by_path() {
    let cmd = "/snap/kubelet/1/kubelet --config=/root/cdk/kubelet/config.yaml --v=0\n";
    let config = "authentication:\n  anonymous:\n    enabled: false\nauthorization:\n  mode: Webhook\nreadOnlyPort: 0\n";
    let anon = run("4.2.1", cmd, config);
    assert_eq!(anon.state, State::Pass);
    assert_eq!(
        anon.expected,
        "'{.authentication.anonymous.enabled}' is equal to 'false'"
    );
    assert_eq!(anon.actual, config.trim_end());
    // On the command line, the flag decides (kube-bench looks no further).
    let on_cmd = run("4.2.1", "kubelet --anonymous-auth=false", "");
    assert_eq!(on_cmd.state, State::Pass);
    assert_eq!(on_cmd.expected, "'--anonymous-auth' is equal to 'false'");
    // A flag found on the command line decides its item: kube-bench
    // reads the file only for a flag it did not find, so a failing flag
    // with a passing file is a FAIL.
    assert_eq!(
        run("4.2.1", "kubelet --anonymous-auth=true", config).state,
        State::Fail
    );
    assert_eq!(
        run("4.2.1", "kubelet --anonymous-auth=true", "").state,
        State::Fail
    );
    assert_eq!(
        run("4.2.1", "kubelet --anonymous-auth", "").state,
        State::Fail
    );
    assert_eq!(
        run("4.2.2", cmd, "authorization: {mode: AlwaysAllow}").state,
        State::Fail
    );
    // No flag: both items read the file, where 10255 fails both.
    assert_eq!(run("4.2.4", cmd, "readOnlyPort: 10255").state, State::Warn);
    assert_eq!(
        run(
            "4.2.4",
            "kubelet --read-only-port=10255",
            "readOnlyPort: 10255"
        )
        .state,
        State::Warn
    );
    // `--flag value`: kube-bench's pattern reads no value there, so the
    // flag counts as `true`.
    let spaced = run("4.2.4", "kubelet --read-only-port 0", "");
    assert_eq!(spaced.state, State::Warn);
    assert_eq!(
        spaced.expected,
        "'--read-only-port' is equal to '0' OR '--read-only-port' is not present"
    );
}

#[test]
fn hostname_override_is_read_from_the_command_line_only() {
    let set = run("4.2.8", "kubelet --hostname-override=node-1 --v=0", "");
    assert_eq!(set.state, State::Warn);
    assert_eq!(set.expected, "'--hostname-override' is not present");
    assert_eq!(run("4.2.8", "kubelet --v=0", "").state, State::Pass);
}

#[test]
fn ciphers_must_all_be_strong() {
    assert_eq!(run("4.2.13", "kubelet", "").state, State::Warn, "unset");
    let strong = format!("kubelet --tls-cipher-suites={}", checks::STRONG_CIPHERS);
    assert_eq!(run("4.2.13", &strong, "").state, State::Pass);
    let weak =
        "kubelet --tls-cipher-suites=TLS_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_RC4_128_SHA";
    assert_eq!(run("4.2.13", weak, "").state, State::Warn);
    let listed =
        "tlsCipherSuites:\n- TLS_RSA_WITH_AES_256_GCM_SHA384\n- TLS_RSA_WITH_AES_128_GCM_SHA256\n";
    assert_eq!(run("4.2.13", "kubelet", listed).state, State::Pass);
    assert_eq!(run("4.2.9", "kubelet --event-qps=0", "").state, State::Pass);
    assert_eq!(
        run("4.2.9", "kubelet", "eventRecordQPS: 0").state,
        State::Pass
    );
    assert_eq!(
        run("4.2.9", "kubelet", "eventRecordQPS: 5").state,
        State::Warn
    );
}

#[test]
fn feature_gates_and_rotation() {
    assert_eq!(run("4.2.11", "kubelet", "").state, State::Pass);
    // No flag on the command line: both items read the file, and its
    // `false` fails both.
    assert_eq!(
        run("4.2.11", "kubelet", "rotateCertificates: false").state,
        State::Fail
    );
    // A flag found and false fails its first item, and its second (it is
    // present): the file is not read for either.
    assert_eq!(
        run("4.2.11", "kubelet --rotate-certificates=false", "").state,
        State::Fail
    );
    assert_eq!(
        run(
            "4.2.12",
            "kubelet --feature-gates=RotateKubeletServerCertificate=false",
            "featureGates: {RotateKubeletServerCertificate: false}"
        )
        .state,
        State::Warn
    );
    assert_eq!(
        run(
            "4.2.12",
            "kubelet",
            "featureGates: {RotateKubeletServerCertificate: true}"
        )
        .state,
        State::Pass
    );
}

/// The kubelet flags the checks look for, and the values worth trying.
const FLAGS: [&str; 13] = [
    "--anonymous-auth",
    "--authorization-mode",
    "--client-ca-file",
    "--read-only-port",
    "--streaming-connection-idle-timeout",
    "--protect-kernel-defaults",
    "--make-iptables-util-chains",
    "--hostname-override",
    "--event-qps",
    "--tls-cert-file",
    "--tls-private-key-file",
    "--rotate-certificates",
    "--tls-cipher-suites",
];

const VALUES: [&str; 16] = [
    "true",
    "false",
    "TRUE",
    "False",
    "0",
    "5",
    "10255",
    "4h0m0s",
    "Webhook",
    "AlwaysAllow,Webhook",
    "/root/cdk/ca.crt",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256,",
    "RotateKubeletServerCertificate=false",
    "",
];

/// One flag as a command line may carry it.
fn flag_word() -> impl Strategy<Value = String> {
    let flag = prop_oneof![
        prop::sample::select(FLAGS.to_vec()).prop_map(str::to_string),
        Just("--feature-gates".to_string()),
        Just("--v".to_string()),
        Just("--config".to_string()),
    ];
    let value = prop::sample::select(VALUES.to_vec());
    let form = prop::sample::select(vec!["=", " ", ": ", ":", "", "=="]);
    (flag, form, value).prop_map(|(flag, form, value)| {
        if flag == "--feature-gates" {
            format!("--feature-gates=RotateKubeletServerCertificate={value},Other=true")
        } else {
            format!("{flag}{form}{value}")
        }
    })
}

/// `ps -fC kubelet`'s lines as the charm reads them: one or two kubelets,
/// words apart by spaces, tabs or, rarely, a space kube-bench's pattern
/// does not take for one.
fn command_line() -> impl Strategy<Value = String> {
    let sep = prop::sample::select(vec![" ", " ", " ", "  ", "\t", "\u{a0}", "\u{b}"]);
    let line = prop::collection::vec((flag_word(), sep), 0..8).prop_map(|words| {
        let mut line = "/snap/kubelet/3187/kubelet".to_string();
        for (word, sep) in words {
            line.push_str(sep);
            line.push_str(&word);
        }
        line + "\n"
    });
    prop::collection::vec(line, 1..3).prop_map(|lines| lines.concat())
}

/// kubelet's config file: the checks' paths with typed values, written as
/// YAML or JSON; sometimes neither, or empty.
fn config_file() -> impl Strategy<Value = String> {
    let paths = prop::sample::select(vec![
        "authentication.anonymous.enabled",
        "authorization.mode",
        "authentication.x509.clientCAFile",
        "readOnlyPort",
        "streamingConnectionIdleTimeout",
        "protectKernelDefaults",
        "makeIPTablesUtilChains",
        "eventRecordQPS",
        "tlsCertFile",
        "tlsPrivateKeyFile",
        "rotateCertificates",
        "featureGates.RotateKubeletServerCertificate",
        "tlsCipherSuites",
    ]);
    let value = prop_oneof![
        any::<bool>().prop_map(serde_json::Value::from),
        (0u32..20_000).prop_map(serde_json::Value::from),
        prop::sample::select(VALUES.to_vec()).prop_map(serde_json::Value::from),
        Just(serde_json::json!({"enabled": false})),
        prop::collection::vec(prop::sample::select(VALUES.to_vec()), 0..3)
            .prop_map(serde_json::Value::from),
    ];
    let entries = prop::collection::vec((paths, value), 0..8);
    let form = prop::sample::select(vec!["yaml", "yaml", "json", "broken", "empty"]);
    (entries, form).prop_map(|(entries, form)| {
        let mut doc = serde_json::json!({"kind": "KubeletConfiguration"});
        for (path, value) in entries {
            let mut at = &mut doc;
            let keys: Vec<&str> = path.split('.').collect();
            for key in &keys[..keys.len() - 1] {
                if !at[*key].is_object() {
                    at[*key] = serde_json::json!({});
                }
                at = &mut at[*key];
            }
            at[keys[keys.len() - 1]] = value;
        }
        match form {
            "yaml" => serde_yaml::to_string(&doc).unwrap(),
            "json" => serde_json::to_string_pretty(&doc).unwrap(),
            "broken" => "authentication: [anonymous\n".to_string(),
            _ => String::new(),
        }
    })
}

/// What `stat` prints for a file check: a mode, an owner, or nothing (no
/// such file).
fn stat_output() -> impl Strategy<Value = (String, String)> {
    let mode = prop_oneof![
        Just(String::new()),
        (0u32..0o1000).prop_map(|m| format!("permissions={m:o}\n")),
    ];
    let owner = prop_oneof![
        Just(String::new()),
        prop::sample::select(vec![
            "root:root\n",
            "root:ubuntu\n",
            "ubuntu:root\n",
            "UNKNOWN:UNKNOWN\n"
        ])
        .prop_map(str::to_string),
    ];
    (mode, owner)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Every check, on generated outputs, gives kube-bench's verdict, its
    /// actual value and its expected result: above all, never PASS where
    /// kube-bench says FAIL.
    #[test]
    fn every_check_gives_kube_benchs_verdict(
        command in command_line(),
        config in config_file(),
        readable in prop::bool::weighted(0.95),
        (mode, owner) in stat_output(),
    ) {
        for (_, check) in checks::all() {
            let output = match check.audit {
                Audit::Mode(_) => mode.as_str(),
                Audit::Owner(_) => owner.as_str(),
                Audit::Kubelet { .. } => command.as_str(),
            };
            let charm = evaluated(check, output, readable.then_some(config.as_str()));
            let kube_bench = referee::run(
                check,
                output,
                if readable { Ok(config.as_str()) } else { Err(()) },
                &substitute,
            );
            prop_assert_eq!(
                (charm.state, &charm.actual, &charm.expected),
                (kube_bench.state, &kube_bench.actual, &kube_bench.expected),
                "check {} on {:?} with config {:?}", check.id, output, config
            );
        }
    }
}
