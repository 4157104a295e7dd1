//! Issue 22: the cloud integrations. A worker on AWS, Google Cloud or
//! Azure, related to that cloud's integrator, asks it for the instance's
//! tags and the permissions today's charm asks for; the stand-in
//! integrator (juju_sim::clouds) reads the request as the real one does,
//! grants it, and answers; the instance's identity comes from a stand-in
//! of the cloud's metadata service.

mod common;

use common::cluster::{Cluster, Master, Relations};
use juju_sim::clouds::{self, Cloud, Grants, Instance, Integrator, MetadataService};
use juju_sim::Sim;

const TAG: &str = "kubernetes-4c7bx1p2ut6bbmwbyhd2yuucf9rwwnnq";

/// A unit on `cloud`, in today's cluster, its metadata service standing
/// by.
fn on(cloud: Cloud) -> (Sim, tempfile::TempDir, Cluster, Relations, MetadataService) {
    let (sim, scratch) = common::provisioned();
    clouds::provision(&sim, cloud);
    let metadata = MetadataService::start(&Instance::on(cloud));
    metadata.serve_to(&sim);
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = Cluster::new();
    let rels = c.relate(&sim, Master::Today);
    common::assert_active(&sim);
    (sim, scratch, c, rels, metadata)
}

fn relation_sets(sim: &Sim, mark: juju_sim::Mark, relation: u32) -> usize {
    let rid = format!("{}", relation);
    sim.tool_calls_since(mark)
        .iter()
        .filter(|c| {
            c.tool == "relation-set" && c.args.iter().any(|a| a.ends_with(&format!(":{rid}")))
        })
        .count()
}

fn waiting_for_integration(sim: &Sim) {
    assert_eq!(
        sim.status(),
        ("waiting".into(), "Waiting for cloud-integration".into()),
        "{}",
        sim.timeline()
    );
}

fn owned() -> std::collections::BTreeMap<String, String> {
    [(format!("kubernetes.io/cluster/{TAG}"), "owned".to_string())].into()
}

fn labelled() -> std::collections::BTreeMap<String, String> {
    [("k8s-io-cluster-name".to_string(), TAG.to_string())].into()
}

/// What each integrator grants this worker, as the integrator reads
/// today's request.
fn expected(cloud: Cloud) -> Grants {
    let permissions = |p: &[&str]| p.iter().map(|s| s.to_string()).collect();
    match cloud {
        Cloud::Aws => Grants {
            instance_tags: owned(),
            security_group_tags: owned(),
            subnet_tags: owned(),
            permissions: permissions(&[
                "instance-inspection",
                "dns-management",
                "object-storage-management",
            ]),
            object_storage_patterns: vec!["arn:aws:s3:::kubernetes-*".into()],
            place: "us-east-1".into(),
        },
        // The libraries send `enable-dns`, which these integrators do
        // not read: DNS is not granted by the request, as today.
        Cloud::Gce => Grants {
            instance_tags: labelled(),
            permissions: permissions(&["instance-inspection", "object-storage-management"]),
            place: "us-central1-a".into(),
            ..Grants::default()
        },
        Cloud::Azure => Grants {
            instance_tags: labelled(),
            permissions: permissions(&["instance-inspection", "object-storage-management"]),
            place: "eastus".into(),
            ..Grants::default()
        },
    }
}

fn integrates_on(cloud: Cloud) {
    let (sim, _scratch, _c, _rels, metadata) = on(cloud);
    let mut integrator = Integrator::relate(&sim, cloud);
    waiting_for_integration(&sim);
    assert!(integrator.handle(&sim), "the integrator found no request");
    common::assert_active(&sim);
    let instance = Instance::on(cloud);
    assert_eq!(
        integrator.granted.get(&instance.id),
        Some(&expected(cloud)),
        "{cloud:?}"
    );
    // The metadata service was asked once, as the library asks it.
    let asked: Vec<String> = metadata
        .requests()
        .iter()
        .map(|(m, p, s)| format!("{m} {p} {s}"))
        .collect();
    let want: &[&str] = match cloud {
        Cloud::Aws => &[
            "PUT /latest/api/token 200",
            "GET /latest/meta-data/instance-id 200",
            "GET /latest/meta-data/placement/availability-zone 200",
        ],
        Cloud::Gce => &[
            "GET /computeMetadata/v1/instance/name 200",
            "GET /computeMetadata/v1/instance/zone 200",
        ],
        Cloud::Azure => &["GET /metadata/instance?api-version=2017-12-01 200"],
    };
    assert_eq!(asked, want);

    // Nothing is requested again when nothing changed.
    let mark = sim.mark();
    for hook in ["config-changed", "update-status", "upgrade-charm"] {
        sim.hook(hook).assert_ok();
    }
    sim.change(integrator.relation, &integrator.unit, &[("unrelated", "x")])
        .assert_ok();
    assert_eq!(relation_sets(&sim, mark, integrator.relation), 0);
    assert!(!integrator.handle(&sim), "the request was made again");
    assert_eq!(integrator.fulfilled, 1);
    assert_eq!(metadata.requests().len(), want.len());
    common::assert_active(&sim);
}

#[test]
fn on_aws_the_instance_its_security_group_and_subnet_are_tagged() {
    integrates_on(Cloud::Aws);
}

#[test]
fn on_google_cloud_the_instance_is_labelled() {
    integrates_on(Cloud::Gce);
}

#[test]
fn on_azure_the_vm_is_tagged() {
    integrates_on(Cloud::Azure);
}

/// An integrator of another cloud: a status that says so, nothing sent,
/// no metadata service asked; removing the relation clears it.
#[test]
fn an_integrator_of_another_cloud_is_a_clear_status() {
    let (sim, _scratch, _c, _rels, metadata) = on(Cloud::Gce);
    let mark = sim.mark();
    let mut integrator = Integrator::relate(&sim, Cloud::Aws);
    assert_eq!(
        sim.status(),
        (
            "blocked".into(),
            "aws relation: this machine is not on AWS but on gce; remove the relation \
             (juju remove-relation kubernetes-worker:aws)"
                .into()
        )
    );
    assert_eq!(relation_sets(&sim, mark, integrator.relation), 0);
    assert!(!integrator.handle(&sim));
    assert!(metadata.requests().is_empty());
    for run in sim.unrelate(integrator.relation) {
        run.assert_ok();
    }
    common::assert_active(&sim);
}

/// The cluster tag comes late: the instance is made known at once (as
/// the library does on joining), the tags asked for once the tag comes.
#[test]
fn the_cluster_tag_arriving_late_is_waited_for() {
    let (sim, _scratch, c, rels, _metadata) = on(Cloud::Aws);
    let control_unit = sim
        .unit()
        .relation(rels.control)
        .unwrap()
        .members
        .iter()
        .next()
        .unwrap()
        .clone();
    sim.change(rels.control, &control_unit, &[("cluster-tag", "")])
        .assert_ok();
    let mut integrator = Integrator::relate(&sim, Cloud::Aws);
    assert_eq!(
        sim.status(),
        (
            "waiting".into(),
            "Waiting for the cluster-tag from kube-control (the aws integrator tags this instance by it)"
                .into()
        )
    );
    // The integrator answers the bare request (no tags yet).
    assert!(integrator.handle(&sim));
    let instance = Instance::on(Cloud::Aws);
    assert_eq!(
        integrator.granted[&instance.id].instance_tags,
        Default::default()
    );
    assert_eq!(sim.status().0, "waiting");
    // The tag arrives with kube-control.
    sim.change(rels.control, &control_unit, &[("cluster-tag", TAG)])
        .assert_ok();
    waiting_for_integration(&sim);
    assert!(integrator.handle(&sim));
    assert_eq!(integrator.granted[&instance.id], expected(Cloud::Aws));
    common::assert_active(&sim);
    drop(c);
}

/// The metadata service does not answer: the unit says so and waits;
/// the next hook, whatever it is, asks again.
#[test]
fn an_unreachable_metadata_service_is_retried() {
    let (sim, _scratch, _c, _rels, metadata) = on(Cloud::Azure);
    metadata.state.lock().unwrap().down = true;
    let mut integrator = Integrator::relate(&sim, Cloud::Azure);
    let (kind, message) = sim.status();
    assert_eq!(kind, "waiting");
    assert!(
        message.starts_with("Waiting for the Azure metadata service (GET ")
            && message.ends_with("; retried on the next hook"),
        "{message}"
    );
    assert!(!integrator.handle(&sim));
    metadata.state.lock().unwrap().down = false;
    sim.hook("update-status").assert_ok();
    waiting_for_integration(&sim);
    assert!(integrator.handle(&sim));
    common::assert_active(&sim);
}

/// The integrator leaves: nothing to wait for.
#[test]
fn the_integrator_leaving_leaves_the_unit_active() {
    let (sim, _scratch, _c, _rels, _metadata) = on(Cloud::Gce);
    let integrator = Integrator::relate(&sim, Cloud::Gce);
    waiting_for_integration(&sim);
    for run in sim.unrelate(integrator.relation) {
        run.assert_ok();
    }
    common::assert_active(&sim);
}
