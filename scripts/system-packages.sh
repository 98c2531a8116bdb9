#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real (see docs/architecture.md,
# "Tests"), only when they are missing: Prometheus, which the PromQL agreement tests compare
# against (its promtool confirms the expected values of tests/promql/*.test), and Chromium, which renders the status page in the browser tests. A machine that
# already has them is not touched; one that cannot install them fails here, loudly, rather
# than letting the suite skip those tests.
set -euo pipefail
missing=()
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists may be stale or absent on a fresh machine.
$SUDO apt-get update -qq >/dev/null
# policy-rc.d 101 keeps the package's own service from starting: tests run their own
# Prometheus on a free port and must not find one already on 9090.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
