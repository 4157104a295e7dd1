# The bags today's Python worker leaves on the integrator relations, made as
# its interface libraries make them (their _request, in the order its
# cloud_integration.py calls them), and the AWS integrator's hash of the
# AWS one. `python3 python-requests.py` printed the fixtures beside it.
import json, hashlib
def fj(s):
    try: return json.loads(s)
    except json.decoder.JSONDecodeError: return s
juju = {"private-address": "10.0.0.5", "ingress-address": "10.0.0.5", "egress-subnets": "10.0.0.5/32"}
tag = "kubernetes-4ypskxahbu3rnfgsds3pksvwe3uh0lxt"
# AWS (ops lib, juju-solutions/interface-aws-integration main)
b = dict(juju)
def aws_req(kv):
    b.update({k: json.dumps(v) for k, v in kv.items()}); b["requested"] = "true"
aws_req({"instance-id": "i-0123456789abcdef0", "region": "us-east-1"})
t = {f"kubernetes.io/cluster/{tag}": "owned"}
aws_req({"instance-tags": dict(t)}); aws_req({"instance-security-group-tags": dict(t)}); aws_req({"instance-subnet-tags": dict(t)})
aws_req({"enable-object-storage-management": True, "object-storage-management-patterns": ["arn:aws:s3:::kubernetes-*"]})
aws_req({"enable-instance-inspection": True}); aws_req({"enable-dns-management": True})
print("AWS", json.dumps(b, sort_keys=True))
# provider hash: dict(JSONUnitDataView) decoded
print("AWSHASH", hashlib.sha256(json.dumps({k: fj(v) for k, v in b.items()}, sort_keys=True).encode()).hexdigest())
# GCP ops lib: requested = sha over raw bag
g = dict(juju)
def g_req(kv):
    g.update({k: json.dumps(v) for k, v in kv.items()})
    g["requested"] = hashlib.sha256(json.dumps(dict(g), sort_keys=True).encode("utf8")).hexdigest()
g_req({"charm": "kubernetes-worker", "instance": "juju-0a1b2c-0", "zone": "us-central1-a", "model-uuid": "6a3b1c1e-2f3d-4e5f-8a9b-0c1d2e3f4a5b"})
g_req({"instance-labels": {"k8s-io-cluster-name": tag}}); g_req({"enable-object-storage-management": True})
g_req({"enable-instance-inspection": True}); g_req({"enable-dns": True})
print("GCP", json.dumps(g, sort_keys=True))
# Azure ops lib: requested = sha over decoded bag
a = dict(juju)
def a_req(kv):
    a.update({k: json.dumps(v) for k, v in kv.items()})
    a["requested"] = hashlib.sha256(json.dumps({k: fj(v) for k, v in a.items()}, sort_keys=True).encode()).hexdigest()
a_req({"charm": "kubernetes-worker", "vm-id": "2f0c2e4b-8e2a-4c1b-9d4f-6b3e1a2c7d90", "vm-name": "juju-0a1b2c-0", "vm-location": "eastus", "res-group": "juju-k8s-model-0a1b2c", "subscription-id": "00000000-1111-2222-3333-444444444444", "model-uuid": "6a3b1c1e-2f3d-4e5f-8a9b-0c1d2e3f4a5b"})
a_req({"instance-tags": {"k8s-io-cluster-name": tag}}); a_req({"enable-object-storage-management": True})
a_req({"enable-instance-inspection": True}); a_req({"enable-dns": True})
print("AZURE", json.dumps(a, sort_keys=True))
