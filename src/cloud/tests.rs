use super::*;

const TAG: &str = "kubernetes-4ypskxahbu3rnfgsds3pksvwe3uh0lxt";
const MODEL: &str = "6a3b1c1e-2f3d-4e5f-8a9b-0c1d2e3f4a5b";

/// The bag today's Python worker leaves (tests/data/cloud, made by
/// python-requests.py as the interface libraries make it).
fn python_bag(cloud: &str) -> Databag {
    let path = format!(
        "{}/tests/data/cloud/{cloud}-bag.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn juju_keys() -> Databag {
    [
        ("private-address", "10.0.0.5"),
        ("ingress-address", "10.0.0.5"),
        ("egress-subnets", "10.0.0.5/32"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn integration(endpoint: &str) -> Integration {
    *INTEGRATIONS
        .iter()
        .find(|i| i.endpoint == endpoint)
        .unwrap()
}

fn facts(pairs: &[(&str, &str)]) -> metadata::Facts {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn facts_of(cloud: &str) -> metadata::Facts {
    match cloud {
        AWS => facts(&[
            ("instance-id", "i-0123456789abcdef0"),
            ("region", "us-east-1"),
        ]),
        GCP => facts(&[("instance", "juju-0a1b2c-0"), ("zone", "us-central1-a")]),
        _ => facts(&[
            ("vm-id", "2f0c2e4b-8e2a-4c1b-9d4f-6b3e1a2c7d90"),
            ("vm-name", "juju-0a1b2c-0"),
            ("vm-location", "eastus"),
            ("res-group", "juju-k8s-model-0a1b2c"),
            ("subscription-id", "00000000-1111-2222-3333-444444444444"),
        ]),
    }
}

/// What this charm asks for, on a fresh relation, is what today's charm
/// asks for, value for value.
#[test]
fn a_fresh_request_is_the_python_charms() {
    for cloud in [AWS, GCP, AZURE] {
        let i = integration(cloud);
        let want = request(&i, &facts_of(cloud), MODEL, Some(TAG));
        let mut bag = juju_keys();
        bag.extend(changes(&i, &juju_keys(), &want));
        let python = python_bag(cloud);
        let keys = |b: &Databag| b.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&bag), keys(&python), "{cloud}");
        for (k, v) in &python {
            if k != "requested" {
                assert_eq!(bag.get(k), Some(v), "{cloud}: {k}");
            }
        }
        if cloud == AWS {
            assert_eq!(bag["requested"], "true");
        }
    }
}

/// A unit that takes over from the Python charm asks for nothing again:
/// its bag already holds the request, and the answer to it stands.
#[test]
fn a_switched_unit_keeps_what_the_python_charm_requested() {
    for cloud in [AWS, GCP, AZURE] {
        let i = integration(cloud);
        let bag = python_bag(cloud);
        let want = request(&i, &facts_of(cloud), MODEL, Some(TAG));
        assert_eq!(changes(&i, &bag, &want), Databag::new(), "{cloud}");
    }
}

/// The AWS integrator hashes this unit's bag, decoded, as
/// `json.dumps(..., sort_keys=True)` prints it; the hash CPython made
/// for the Python charm's bag is ours too.
#[test]
fn the_aws_answer_is_the_hash_the_integrator_makes() {
    let bag = python_bag(AWS);
    let python = std::fs::read_to_string(format!(
        "{}/tests/data/cloud/aws-integrator-hash.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert_eq!(bag_hash(&bag), python.trim());
    let i = integration(AWS);
    let answer = |hash: &str| -> Databag {
        [(
            "completed".to_string(),
            format!("{{\"i-0123456789abcdef0\": \"{hash}\"}}"),
        )]
        .into()
    };
    assert!(answered(&i, &answer(python.trim()), &bag));
    // An answer to an earlier request (one tag less) is not this one's.
    let mut earlier = bag.clone();
    earlier.remove("enable-dns-management");
    assert!(!answered(&i, &answer(&bag_hash(&earlier)), &bag));
    assert!(!answered(&i, &Databag::new(), &bag));
    // Another instance's answer is not this one's.
    let other: Databag = [(
        "completed".to_string(),
        format!("{{\"i-other\": \"{}\"}}", python.trim()),
    )]
    .into();
    assert!(!answered(&i, &other, &bag));
}

/// Google Cloud and Azure echo the request's `requested` back.
#[test]
fn gcp_and_azure_answers_echo_the_request() {
    for (cloud, id) in [
        (GCP, "juju-0a1b2c-0"),
        (AZURE, "2f0c2e4b-8e2a-4c1b-9d4f-6b3e1a2c7d90"),
    ] {
        let i = integration(cloud);
        let bag = python_bag(cloud);
        let echo: Databag = [(
            "completed".to_string(),
            format!("{{\"{id}\": \"{}\"}}", bag["requested"]),
        )]
        .into();
        assert!(answered(&i, &echo, &bag), "{cloud}");
        let stale: Databag = [("completed".to_string(), format!("{{\"{id}\": \"0\"}}"))].into();
        assert!(!answered(&i, &stale, &bag), "{cloud}");
    }
}

/// A new cluster tag changes the tags, and the request: a new
/// `requested` where the integrator echoes it.
#[test]
fn a_new_cluster_tag_is_a_new_request() {
    for cloud in [AWS, GCP, AZURE] {
        let i = integration(cloud);
        let bag = python_bag(cloud);
        let want = request(&i, &facts_of(cloud), MODEL, Some("kubernetes-other"));
        let changed = changes(&i, &bag, &want);
        let tag_keys: Vec<&str> = match cloud {
            AWS => vec![
                "instance-security-group-tags",
                "instance-subnet-tags",
                "instance-tags",
            ],
            GCP => vec!["instance-labels", "requested"],
            _ => vec!["instance-tags", "requested"],
        };
        assert_eq!(
            changed.keys().map(String::as_str).collect::<Vec<_>>(),
            tag_keys,
            "{cloud}"
        );
        // The same request made twice is one request.
        let mut after = bag.clone();
        after.extend(changed);
        assert_eq!(changes(&i, &after, &want), Databag::new(), "{cloud}");
    }
}

/// Before the cluster tag, only what the library sends on joining.
#[test]
fn before_the_cluster_tag_only_the_instance_is_sent() {
    let want = request(&integration(AWS), &facts_of(AWS), MODEL, None);
    assert_eq!(
        want,
        vec![
            (
                "instance-id".to_string(),
                "\"i-0123456789abcdef0\"".to_string()
            ),
            ("region".to_string(), "\"us-east-1\"".to_string()),
        ]
    );
    let want = request(&integration(GCP), &facts_of(GCP), MODEL, None);
    assert_eq!(
        want.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["charm", "instance", "zone", "model-uuid"]
    );
}
