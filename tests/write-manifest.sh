#!/bin/sh
# Prints the manifest.yaml charmcraft writes into a packed charm, for the
# architectures named: Juju 3.x deploys a charm only on the bases listed.
set -eu
archs=""
for a in "$@"; do archs="$archs
    - $a"; done
cat <<YAML
analysis:
  attributes:
  - name: language
    result: unknown
  - name: framework
    result: unknown
charmcraft-started-at: '$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)'
charmcraft-version: 4.5.0
bases:
  - name: ubuntu
    channel: '22.04'
    architectures:$archs
  - name: ubuntu
    channel: '24.04'
    architectures:$archs
YAML
