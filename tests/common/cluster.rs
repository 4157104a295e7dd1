//! The test cluster (CA, API server, relation data) lives in juju-sim so
//! that the demo uses it too.

pub use juju_sim::cluster::*;

use juju_sim::Sim;

/// A deployed unit of the real charm, related to a fresh cluster.
pub fn running(form: Master) -> (Sim, tempfile::TempDir, Cluster, Relations) {
    let (sim, scratch) = super::provisioned();
    for run in sim.deploy() {
        run.assert_ok();
    }
    let cluster = Cluster::new();
    let rels = cluster.relate(&sim, form);
    (sim, scratch, cluster, rels)
}
