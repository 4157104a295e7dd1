"""The control plane's side of kube-control, as today's charms speak it:
ops-interface-kube-control's KubeControlProvides, in a control-plane charm
run by ops' own testing Harness (no Juju), answering the worker's bag.

Reads one JSON object on stdin:

    {"worker_unit": "kubernetes-worker/0",
     "worker_bag": {...what the worker published on kube-control...},
     "api_endpoints": [...], "cluster_tag": "...", "default_cni": "",
     "dns": {"enabled": true, "domain": "...", "sdn_ip": "...", "port": 53},
     "has_xcp": false, "registry": "...", "labels": [...], "taints": [...],
     "ca": "PEM", "tokens": {"client": "...", "kubelet": "...", "proxy": "..."}}

Writes one JSON object on stdout:

    {"requests": [the auth requests the library parsed from the worker],
     "bag": {the control-plane unit's bag},
     "secrets": {harness secret id: {"label", "content", "granted"}},
     "requirer_bag": {what today's worker (KubeControlRequirer) would publish
                      for the same request}}
"""

import json
import sys

import ops
from ops.interface_kube_control import KubeControlProvides, KubeControlRequirer
from ops.testing import Harness

PROVIDER = """
name: kubernetes-control-plane
provides:
  kube-control:
    interface: kube-control
"""

REQUIRER = """
name: kubernetes-worker
requires:
  kube-control:
    interface: kube-control
"""


class ControlPlane(ops.CharmBase):
    def __init__(self, *args):
        super().__init__(*args)
        self.kube_control = KubeControlProvides(self)


class Worker(ops.CharmBase):
    def __init__(self, *args):
        super().__init__(*args)
        self.kube_control = KubeControlRequirer(self, schemas="0,1")


def provide(case):
    h = Harness(ControlPlane, meta=PROVIDER)
    h.set_leader(True)
    h.begin()
    rid = h.add_relation("kube-control", "kubernetes-worker")
    h.add_relation_unit(rid, case["worker_unit"])
    h.update_relation_data(rid, case["worker_unit"], case["worker_bag"])
    kc = h.charm.kube_control
    requests = kc.auth_requests
    tokens = case["tokens"]
    for request in requests:
        kc.sign_auth_request(request, tokens["client"], tokens["kubelet"], tokens["proxy"])
    kc.set_api_endpoints(case["api_endpoints"])
    kc.set_cluster_name(case["cluster_tag"])
    kc.set_default_cni(case["default_cni"])
    dns = case["dns"]
    kc.set_dns_enabled(dns["enabled"])
    kc.set_dns_domain(dns["domain"])
    kc.set_dns_port(dns["port"])
    if dns["sdn_ip"]:
        kc.set_dns_address(dns["sdn_ip"])
    kc.set_has_external_cloud_provider(case["has_xcp"])
    kc.set_image_registry(case["registry"])
    kc.set_labels(case["labels"])
    kc.set_taints(case["taints"])
    kc.set_ca_certificate(case["ca"])
    bag = dict(h.get_relation_data(rid, h.charm.unit.name))
    secret_ids = set()
    for cred in json.loads(bag.get("creds", "{}")).values():
        if cred.get("secret-id"):
            secret_ids.add(cred["secret-id"])
    if bag.get("ca-certificate-secret-id"):
        secret_ids.add(bag["ca-certificate-secret-id"])
    secrets = {}
    for sid in sorted(secret_ids):
        secret = h.model.get_secret(id=sid)
        info = secret.get_info()
        secrets[sid] = {
            "label": info.label or "",
            "content": secret.get_content(refresh=True),
            "granted": case["worker_unit"] in h.get_secret_grants(sid, rid)
            or "kubernetes-worker" in h.get_secret_grants(sid, rid),
        }
    return {
        "requests": [r.model_dump(exclude_none=True) for r in requests],
        "bag": bag,
        "secrets": secrets,
    }


def requirer_bag(case):
    """What today's worker publishes for the same node user."""
    h = Harness(Worker, meta=REQUIRER)
    h.begin()
    rid = h.add_relation("kube-control", "kubernetes-control-plane")
    h.add_relation_unit(rid, "kubernetes-control-plane/0")
    user = case["worker_bag"].get("kubelet_user", "")
    h.charm.kube_control.set_auth_request(user)
    return dict(h.get_relation_data(rid, h.charm.unit.name))


def main():
    case = json.load(sys.stdin)
    answer = provide(case)
    answer["requirer_bag"] = requirer_bag(case)
    json.dump(answer, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
