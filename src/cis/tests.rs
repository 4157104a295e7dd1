//! kube-bench's evaluation, item by item, on the outputs its audit
//! commands print.

use super::checks::{self, evaluate, Check, Outcome, Seen, State};

fn check(id: &str) -> &'static Check {
    checks::all().map(|(_, c)| c).find(|c| c.id == id).unwrap()
}

fn run(id: &str, output: &str, config: &str) -> Outcome {
    let value: serde_yaml::Value = serde_yaml::from_str(config).unwrap_or_default();
    let substitute = |t: &str| t.replace("$proxykubeconfig", "/root/cdk/kubeproxyconfig");
    evaluate(
        check(id),
        &Seen {
            output,
            config: (config, &value),
            substitute: &substitute,
        },
    )
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
    // A flag with the wrong value: the config file is read next, as
    // kube-bench does, and decides.
    assert_eq!(
        run("4.2.1", "kubelet --anonymous-auth=true", config).state,
        State::Pass
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
    assert_eq!(
        run("4.2.4", cmd, "readOnlyPort: 10255").state,
        State::Pass,
        "the flag is absent"
    );
    assert_eq!(
        run(
            "4.2.4",
            "kubelet --read-only-port=10255",
            "readOnlyPort: 10255"
        )
        .state,
        State::Warn
    );
    assert_eq!(
        run("4.2.4", "kubelet --read-only-port 0", "").state,
        State::Pass
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
    // kube-bench reads the config file only when the command line fails
    // the tests, and an absent flag passes 4.2.11's second item: the file's
    // `false` is never seen. Its verdict, kept.
    assert_eq!(
        run("4.2.11", "kubelet", "rotateCertificates: false").state,
        State::Pass
    );
    // And a flag that fails sends it to the file, where an absent key
    // passes: only both saying false fail.
    assert_eq!(
        run("4.2.11", "kubelet --rotate-certificates=false", "").state,
        State::Pass
    );
    assert_eq!(
        run(
            "4.2.11",
            "kubelet --rotate-certificates=false",
            "rotateCertificates: false"
        )
        .state,
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
