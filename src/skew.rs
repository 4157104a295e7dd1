//! Kubernetes' version-skew policy between a node and its control plane
//! (kubernetes.io/releases/version-skew-policy): kubelet and kube-proxy
//! must not be newer than kube-apiserver, and may be at most three minor
//! versions older; a kubelet older than 1.25 at most two. In an HA
//! control plane the oldest API server counts.

use crate::daemons::Version;

/// The first kubelet that may be three minor versions behind.
const THREE_BEHIND_SINCE: Version = Version(1, 25);

/// Whether a node at `node` may run against `apiserver`; `Err` says why
/// not, naming both.
pub fn allows(node: Version, apiserver: Version) -> Result<(), String> {
    let show = |v: Version| format!("{}.{}", v.0, v.1);
    if node.0 != apiserver.0 {
        return Err(format!(
            "{} and the API server's {} are of different major versions",
            show(node),
            show(apiserver)
        ));
    }
    if node > apiserver {
        return Err(format!(
            "{} is newer than the API server's {}: upgrade the control plane first",
            show(node),
            show(apiserver)
        ));
    }
    let most = if node >= THREE_BEHIND_SINCE { 3 } else { 2 };
    if apiserver.1 - node.1 > most {
        return Err(format!(
            "{} is more than {most} minor versions older than the API server's {}",
            show(node),
            show(apiserver)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_may_trail_the_control_plane_but_never_lead_it() {
        let v = |minor| Version(1, minor);
        assert!(allows(v(31), v(31)).is_ok());
        assert!(allows(v(28), v(31)).is_ok());
        assert!(allows(v(27), v(31))
            .unwrap_err()
            .contains("more than 3 minor versions older"));
        assert!(allows(v(32), v(31))
            .unwrap_err()
            .contains("1.32 is newer than the API server's 1.31"));
        // Before 1.25, two behind at most.
        assert!(allows(v(22), v(24)).is_ok());
        assert!(allows(v(24), v(27))
            .unwrap_err()
            .contains("more than 2 minor"));
        assert!(allows(v(25), v(28)).is_ok());
        assert!(allows(Version(2, 0), v(31)).is_err());
    }
}
