"""Today's Python worker's node configuration, run for real: the
charms.kubernetes-snaps library's configure_kubelet, configure_kube_proxy,
configure_kernel_parameters and get_sandbox_image, called as today's
kubernetes-worker charm (src/charm.py) calls them, with only their side
effects captured: `snap set` and the restarts recorded, the files they
write under /root/cdk, /etc/sysctl.d and /etc/fstab redirected into a
scratch directory, and the machine's facts (host name, FQDN, container or
not, the resolver) as the case says.

One JSON case per line on stdin, one JSON answer per line on stdout:

    {"hostname", "fqdn", "cloud", "has_xcp", "container", "resolv_stub",
     "runtime_endpoint", "dns_domain", "dns_ip", "node_ip", "registry",
     "cluster_cidr", "kubelet_extra_args", "kubelet_extra_config",
     "proxy_extra_args", "proxy_extra_config", "sysctl"}

    {"kubelet_args", "proxy_args", "kubelet_config", "proxy_config",
     "sysctl", "lxd_kernel_params", "sandbox_image", "error"}

A line {"ip_output": <text>} asks instead for get_bind_addresses, the
machine's addresses for the serving certificate, with `ip -j -br addr
show scope global` printing that text: {"bind_addresses": [...]}.
"""

import io
import json
import os
import shlex
import sys
import tempfile
import types
from pathlib import Path

import yaml
from charms import kubernetes_snaps as ks

REAL_OPEN = open


class Machine:
    """The machine one case describes, and what the library did to it."""

    def __init__(self, case, root):
        self.case = case
        self.root = root
        self.snap_set = {}
        self.commands = []

    def path(self, p):
        p = os.fspath(p)
        return os.path.join(self.root, p.lstrip("/")) if p.startswith("/") else p

    def check_call(self, cmd, *args, **kwargs):
        self.commands.append(list(cmd))
        if cmd[:2] == ["snap", "set"]:
            self.snap_set[cmd[2]] = cmd[3]
        return 0

    def call(self, cmd, *args, **kwargs):
        self.commands.append(list(cmd))
        if cmd[:2] == ["systemd-detect-virt", "--container"]:
            return 0 if self.case["container"] else 1
        return 0

    def check_output(self, cmd, *args, **kwargs):
        raise RuntimeError(f"unexpected command {cmd}")

    def realpath(self, p, *args, **kwargs):
        if p == "/etc/resolv.conf":
            return (
                "/run/systemd/resolve/stub-resolv.conf"
                if self.case["resolv_stub"]
                else "/etc/resolv.conf"
            )
        return os.path.realpath(self.path(p))


def patch(machine):
    """Points the library's side effects at `machine`."""
    fake_os = types.SimpleNamespace(
        makedirs=lambda p, *a, **k: os.makedirs(machine.path(p), *a, **k),
        remove=lambda p: os.remove(machine.path(p)),
        path=types.SimpleNamespace(
            realpath=machine.realpath,
            exists=lambda p: os.path.exists(machine.path(p)),
            join=os.path.join,
        ),
        environ=os.environ,
    )
    ks.os = fake_os
    ks.open = lambda p, *a, **k: REAL_OPEN(machine.path(p), *a, **k)
    ks.Path = lambda p: Path(machine.path(p))
    ks.check_call = machine.check_call
    ks.call = machine.call
    ks.check_output = machine.check_output
    ks.gethostname = lambda: machine.case["hostname"]
    ks.getfqdn = lambda: machine.case["fqdn"]


class ExternalCloud:
    def __init__(self, name, has_xcp):
        self.name = name
        self.has_xcp = has_xcp


def flags(args):
    """`--key="value" ...`, as configure_kubernetes_service builds it."""
    out = {}
    for word in shlex.split(args):
        key, _, value = word[2:].partition("=")
        out[key] = value
    return out


def read_yaml(path):
    if not os.path.exists(path):
        return None
    with REAL_OPEN(path) as f:
        return yaml.safe_load(f)


def run(case):
    with tempfile.TemporaryDirectory() as root:
        machine = Machine(case, root)
        # What every Ubuntu machine has.
        os.makedirs(machine.path("/etc/sysctl.d"))
        patch(machine)
        cloud = ExternalCloud(case["cloud"], case["has_xcp"])
        answer = {"error": None}
        try:
            ks.configure_kubelet(
                container_runtime_endpoint=case["runtime_endpoint"],
                dns_domain=case["dns_domain"],
                dns_ip=case["dns_ip"],
                extra_args_config=case["kubelet_extra_args"],
                extra_config=yaml.safe_load(case["kubelet_extra_config"]),
                external_cloud_provider=cloud,
                kubeconfig="/root/cdk/kubeconfig",
                node_ip=case["node_ip"],
                registry=case["registry"],
                taints=None,
            )
            ks.configure_kube_proxy(
                cluster_cidr=case["cluster_cidr"],
                extra_args_config=case["proxy_extra_args"],
                extra_config=yaml.safe_load(case["proxy_extra_config"]),
                kubeconfig="/root/cdk/kubeproxyconfig",
                external_cloud_provider=cloud,
            )
            ks.configure_kernel_parameters(yaml.safe_load(case["sysctl"]))
        except Exception as e:  # the library's own failure is an answer too
            answer["error"] = f"{type(e).__name__}: {e}"
        sysctl_file = machine.path("/etc/sysctl.d/50-kubernetes-charm.conf")
        sysctl = None
        if os.path.exists(sysctl_file):
            sysctl = {}
            with REAL_OPEN(sysctl_file) as f:
                for line in f.read().splitlines():
                    key, _, value = line.partition(" = ")
                    sysctl[key] = value
        params = machine.path("/root/cdk/lxd-kernel-params")
        answer.update(
            {
                "kubelet_args": flags(machine.snap_set.get("kubelet", "args=")[5:]),
                "proxy_args": flags(machine.snap_set.get("kube-proxy", "args=")[5:]),
                "kubelet_config": read_yaml(machine.path("/root/cdk/kubelet/config.yaml")),
                "proxy_config": read_yaml(machine.path("/root/cdk/kubeproxy/config.yaml")),
                "sysctl": sysctl,
                "lxd_kernel_params": sorted(os.listdir(params)) if os.path.isdir(params) else [],
                "sandbox_image": ks.get_sandbox_image(case["registry"]),
            }
        )
        return answer


def bind_addresses(ip_output):
    real = ks.check_output
    ks.check_output = lambda cmd, *a, **k: (
        ip_output.encode() if cmd == ["ip", "-j", "-br", "addr", "show", "scope", "global"] else real(cmd, *a, **k)
    )
    try:
        return {"bind_addresses": ks.get_bind_addresses()}
    finally:
        ks.check_output = real


def main():
    # The library logs; stdout carries the answers only.
    import logging

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if "ip_output" in request:
            answer = bind_addresses(request["ip_output"])
        else:
            answer = run(request)
        print(json.dumps(answer, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
