#!/bin/sh
# Runs `charmcraft analyse` on the packed charm and fails on any error or
# warning, except two that do not apply to this charm (see docs/engineers/building.md):
#   entrypoint: the linter reads dispatch's last word as a Python script's
#     path; our dispatch picks bin/kubernetes-worker-<arch> at run time, and
#     `make charm` checks every one of those instead.
#   metadata: `series` is deprecated for Juju 4, but Juju 2.x needs it.
set -eu
charmcraft=$1 charm=$2
# It exits non-zero when a lint fails; the results are judged below.
out=$(XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} "$charmcraft" analyse --format json "$charm" 2>/dev/null) || true
echo "$out" | python3 -c '
import json, sys
def excused(name, text):
    if name == "entrypoint":
        return "Cannot find the entrypoint file" in text and text.rstrip("\x27").endswith("$@")
    if name == "metadata":
        return text.startswith("The metadata.yaml file contains the deprecated attribute: series.")
    return False
bad = []
for check in json.load(sys.stdin):
    name, result, text = check.get("name"), check.get("result"), check.get("text", "")
    if result in ("error", "warning", "errors", "warnings", "fatal"):
        verdict = "does not apply (see docs/engineers/building.md)" if excused(name, text) else "FAILS"
        if verdict == "FAILS":
            bad.append(name)
        print(f"  {name}: {result}: {text} -> {verdict}")
    else:
        print(f"  {name}: {result}")
if bad:
    sys.exit("charmcraft analyse: " + ", ".join(bad))
'
