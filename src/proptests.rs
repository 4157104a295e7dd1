//! Property tests of every parser of outside input: relation values,
//! config options, extra-args and labels, tar archives, kubeconfigs, and
//! what a node the charm takes over holds (snap options, config files). None
//! may panic on any input; where text is rendered and read back, the round
//! trip gives what was rendered.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use crate::relations::{self, EndpointData};
use crate::{args, daemons, kubeconfig, validate};
use juju_sim::fixtures::names_in;

/// Text that looks like what arrives: ASCII, some JSON, control
/// characters, non-ASCII, long runs.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,80}",
        "[\\PC\n\t\u{1b}\"\\\\{}\\[\\]:,]{0,40}",
        Just(String::new()),
        "\"[a-z0-9./:-]{0,30}\"",
        "(https://)?[a-z0-9.:\\[\\]]{0,30}(:[0-9]{1,6})?",
    ]
}

/// One remote unit's bag with keys the worker reads.
fn bag(keys: &'static [&'static str]) -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(
        proptest::sample::select(keys).prop_map(str::to_string),
        text(),
        0..keys.len(),
    )
}

fn endpoint(keys: &'static [&'static str]) -> impl Strategy<Value = EndpointData> {
    btree_map("[a-z-]{1,8}/[0-9]", bag(keys), 0..3).prop_map(|units| {
        let mut data = EndpointData::default();
        data.relations.insert("rel:1".into(), units);
        data
    })
}

const CONTROL_KEYS: &[&str] = &[
    "creds",
    "kubelet_token",
    "proxy_token",
    "client_token",
    "enable-kube-dns",
    "sdn-ip",
    "port",
    "domain",
    "api-endpoints",
    "has-xcp",
    "cluster-tag",
    "registry-location",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn kube_control_never_panics_and_what_it_accepts_is_valid(data in endpoint(CONTROL_KEYS)) {
        if let Ok(Some(control)) = relations::kube_control(&data, "system:node:n") {
            if let relations::Dns::Ready { ip, domain, port } = &control.dns {
                prop_assert!(validate::ip(ip).is_ok());
                prop_assert!(validate::dns_name(domain).is_ok());
                prop_assert!(*port > 0);
            }
            for url in &control.api_urls {
                prop_assert!(validate::https_url(url).is_ok());
            }
            prop_assert!(validate::registry(&control.registry).is_ok());
        }
        let _ = relations::redact_tokens(&data);
    }

    #[test]
    fn the_other_relations_never_panic(
        http in endpoint(&["hostname", "private-address", "port"]),
        certs in endpoint(&["ca", "client.cert", "client.key", "w_0.server.cert", "w_0.server.key"]),
        cni in endpoint(&["cidr", "cni-conf-file"]),
        runtime in endpoint(&["socket", "runtime", "nvidia_enabled"]),
    ) {
        if let Ok(urls) = relations::api_urls_from_http(&http) {
            for url in urls {
                prop_assert!(validate::https_url(&url).is_ok(), "{}", url);
            }
        }
        // What the cache keeps is accepted or refused as the relation was.
        let cached = relations::redact_keys(&certs);
        prop_assert_eq!(
            relations::certificates(&certs, "w_0").map(|c| c.is_some()),
            relations::cached_certificates(&cached, "w_0").map(|c| c.is_some())
        );
        if let Ok(Some(cni)) = relations::cni(&cni) {
            prop_assert!(!cni.cidr.contains(char::is_whitespace));
        }
        if let Ok(Some(runtime)) = relations::container_runtime(&runtime) {
            prop_assert!(!runtime.socket.contains(char::is_control));
        }
    }

    #[test]
    fn json_encoded_values_decode_to_what_was_encoded(value in any::<String>()) {
        let encoded = serde_json::to_string(&value).unwrap();
        prop_assert_eq!(relations::decoded(&encoded), value);
    }

    #[test]
    fn args_strings_read_back_as_bash_reads_them(
        flags in btree_map("[a-z][a-z0-9-]{0,20}", any::<String>(), 0..8),
    ) {
        let rendered = daemons::render_args(&flags);
        prop_assert_eq!(daemons::parse_args(&rendered), Some(flags));
    }

    #[test]
    fn extra_args_never_panic(input in text()) {
        if let Ok(parsed) = args::parse_extra_args("kubelet-extra-args", &input) {
            for value in parsed.values() {
                prop_assert!(!value.contains(char::is_control));
            }
        }
    }

    #[test]
    fn extra_args_written_with_quotes_read_back(
        flags in btree_map("[a-z][a-z0-9_.-]{0,20}", "[^\\p{Cc}]{0,20}", 0..6),
    ) {
        let text: Vec<String> = flags
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        let parsed = args::parse_extra_args("x", &text.join(" ")).unwrap();
        prop_assert_eq!(parsed, flags);
    }

    #[test]
    fn labels_never_panic_and_valid_ones_read_back(
        input in text(),
        labels in btree_map("[a-z]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z]([a-z0-9-]{0,8}[a-z0-9])?)?/[a-z]([a-z0-9_-]{0,20}[a-z0-9])?", "[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,20}[a-zA-Z0-9])?", 0..5),
    ) {
        let _ = args::parse_labels(&input);
        let text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let parsed = args::parse_labels(&text.join(" ")).unwrap();
        prop_assert_eq!(parsed.set, labels);
        prop_assert!(parsed.remove.is_empty());
    }

    #[test]
    fn config_never_panics(channel in text(), extra in text(), labels in text(), sysctl in text()) {
        let mut map = serde_json::Map::new();
        map.insert("channel".into(), channel.into());
        map.insert("kubelet-extra-args".into(), extra.clone().into());
        map.insert("kubelet-extra-config".into(), extra.into());
        map.insert("labels".into(), labels.into());
        map.insert("sysctl".into(), sysctl.into());
        let config = crate::config::Config::from_map(&map);
        let _ = config.channel_error();
    }

    #[test]
    fn ingress_and_cos_options_never_panic(
        image in text(),
        cert in text(),
        key in text(),
        cidrs in text(),
        extra in text(),
    ) {
        let mut map = serde_json::Map::new();
        map.insert("nginx-image".into(), image.into());
        map.insert("ingress-default-ssl-certificate".into(), cert.into());
        map.insert("ingress-default-ssl-key".into(), key.into());
        map.insert("ingress-proxy-real-ip-cidr".into(), cidrs.into());
        map.insert("kubelet-extra-config".into(), extra.clone().into());
        let _ = crate::config::Config::from_map(&map);
        let _ = crate::cos::max_pods(&extra);
    }

    #[test]
    fn cos_tokens_never_panic_and_what_is_taken_is_a_token(data in endpoint(&["tokens"])) {
        if let Ok(Some(token)) = crate::cos::token(&data, "system:cos:n") {
            prop_assert!(validate::token(&token).is_ok());
        }
        let _ = relations::redact_cos_tokens(&data);
    }

    #[test]
    fn a_cos_token_answered_is_found(
        token in "[A-Za-z0-9:_-]{1,64}",
        others in btree_map("system:cos:[a-z]{1,8}", "[A-Za-z0-9]{1,16}", 0..4),
    ) {
        let mut answer: serde_json::Map<String, serde_json::Value> = others
            .into_iter()
            .map(|(user, token)| (user, token.into()))
            .collect();
        answer.insert("system:cos:n".into(), token.clone().into());
        let mut data = EndpointData::default();
        data.relations.insert(
            "tokens:3".into(),
            [("cp/0".to_string(), [("tokens".to_string(), serde_json::Value::Object(answer).to_string())].into())].into(),
        );
        prop_assert_eq!(crate::cos::token(&data, "system:cos:n"), Ok(Some(token)));
    }

    #[test]
    fn snap_options_found_on_a_machine_never_panic(
        options in btree_map("[a-z-]{1,12}", text(), 0..4),
        args in text(),
        numbers in btree_map("[a-z-]{1,12}", any::<i64>(), 0..2),
    ) {
        let mut config: charm::snap::SnapConfig = options
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        config.extend(numbers.into_iter().map(|(k, v)| (k, v.into())));
        config.insert("args".into(), args.into());
        if let Some(flags) = crate::adoption::flags_in_effect(&config) {
            prop_assert!(crate::adoption::flag_differences(&flags, &flags).is_empty());
        }
    }

    #[test]
    fn files_found_on_a_machine_are_compared_without_panic(
        before in vec(any::<u8>(), 0..200),
        after in text(),
        which in proptest::sample::select(vec![
            "/root/cdk/kubelet/config.yaml",
            "/root/cdk/kubeproxy/config.yaml",
            "/root/cdk/ca.crt",
            "/root/cdk/kubeconfig",
        ]),
    ) {
        let _ = crate::adoption::same_in_effect(which, Some(&before), Some(after.as_bytes()));
        prop_assert!(crate::adoption::same_in_effect(which, Some(after.as_bytes()), Some(after.as_bytes())));
    }

    #[test]
    fn kubeconfigs_never_panic(input in text()) {
        let _ = kubeconfig::token(&input);
    }

    #[test]
    fn validators_never_panic_and_quote_on_one_bounded_line(input in text()) {
        for result in [
            validate::dns_name(&input),
            validate::port(&input).map(drop),
            validate::ip(&input).map(drop),
            validate::token(&input),
            validate::https_url(&input),
            validate::registry(&input),
            validate::simple_name(&input),
            validate::pem(&input, validate::Pem::Certificates),
            validate::pem(&input, validate::Pem::PrivateKey),
            validate::cidrs(&input),
            validate::image(&input),
            validate::key_matches(&input, &input),
        ] {
            if let Err(why) = result {
                prop_assert!(!why.contains('\n'));
                prop_assert!(why.len() < 300, "{}", why.len());
            }
        }
    }
}

proptest! {
    // Each case writes an archive and unpacks it.
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_bytes_as_a_plugins_tarball_are_refused_or_unpacked_safely(
        bytes in vec(any::<u8>(), 0..4096),
        gzip in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("cni.tgz");
        let data = if gzip {
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&bytes).unwrap();
            gz.finish().unwrap()
        } else {
            bytes
        };
        std::fs::write(&archive, data).unwrap();
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        let _ = crate::cni::archive::unpack(&archive, &staging, "amd64");
        // Nothing is ever written outside the staging directory.
        prop_assert_eq!(names_in(dir.path()), ["cni.tgz", "staging"]);
    }

    #[test]
    fn any_entry_names_are_refused_or_kept_flat(
        names in vec(vec(any::<u8>(), 1..300), 1..4),
        kinds in vec(0u8..4, 4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("cni.tgz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&archive).unwrap(),
            flate2::Compression::fast(),
        );
        let mut builder = tar::Builder::new(gz);
        for (i, name) in names.iter().enumerate() {
            let mut header = tar::Header::new_gnu();
            let body: &[u8] = b"\x7fELF";
            header.set_size(body.len() as u64);
            header.set_mode(0o755);
            header.set_entry_type(match kinds[i % kinds.len()] {
                0 => tar::EntryType::Regular,
                1 => tar::EntryType::Symlink,
                2 => tar::EntryType::Link,
                _ => tar::EntryType::Directory,
            });
            let _ = header.set_link_name("bridge");
            // Long names go through GNU long-name entries.
            let path: &std::ffi::OsStr = std::os::unix::ffi::OsStrExt::from_bytes(name.as_slice());
            if builder.append_data(&mut header, path, body).is_err() {
                return Ok(());
            }
        }
        builder.into_inner().unwrap().finish().unwrap();
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        if let Ok(Ok(unpacked)) = crate::cni::archive::unpack(&archive, &staging, "amd64") {
            for plugin in &unpacked.plugins {
                prop_assert!(!plugin.contains('/') && !plugin.contains(char::is_control));
                prop_assert!(plugin.len() <= 255);
            }
        }
        prop_assert_eq!(names_in(dir.path()), ["cni.tgz", "staging"]);
    }
}
