"""What the COS side makes of this charm's cos-agent configuration, read
with cosl (the COS charms' own library, pinned in requirements.txt): the
dashboards decoded as grafana-agent's cos_agent library decodes them
(LZMABase64), the alert rules taken by its Rules class with the unit's
Juju topology, as grafana-agent forwards them.

Reads {"config": <the published config JSON>, "topology": {model,
model_uuid, application, unit}} on stdin; writes {"dashboards": [...],
"rules": {...}} on stdout, or fails naming what it could not read.
"""

import json
import logging
import sys

from cosl import JujuTopology, LZMABase64
from cosl.rules import Rules


def main():
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    case = json.load(sys.stdin)
    config = json.loads(case["config"])
    dashboards = [json.loads(LZMABase64.decompress(d)) for d in config["dashboards"]]
    t = case["topology"]
    topology = JujuTopology(
        model=t["model"],
        model_uuid=t["model_uuid"],
        application=t["application"],
        unit=t["unit"],
    )
    rules = Rules(query_type="promql", topology=topology)
    rules.add(config["metrics_alert_rules"], group_name="kubernetes_worker")
    json.dump({"dashboards": dashboards, "rules": rules.as_dict()}, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
