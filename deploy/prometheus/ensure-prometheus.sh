#!/usr/bin/env bash
# Make `prometheus` and `promtool` available for the test suite; idempotent.
#
# - Both on PATH already: do nothing.
# - Otherwise install Debian/Ubuntu's `prometheus` package with apt-get (sudo only when not root).
#
# The tests never use a system service: they start their own `prometheus` on a free port with a
# temporary storage dir. So the package must not leave a daemon on :9090 behind: a policy-rc.d that
# forbids service starts is put in place for the install (when none exists), and on systemd hosts the
# unit is stopped and disabled afterwards.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure-prometheus: prometheus/promtool not on PATH and no apt-get here;" \
		"install Prometheus 2.x+ (https://prometheus.io/download/) and put both binaries on PATH" >&2
	exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "ensure-prometheus: not root and no sudo; cannot apt-get install prometheus" >&2
		exit 1
	fi
	SUDO=(sudo)
fi

POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=0
cleanup() {
	if [ "$OWN_POLICY" -eq 1 ]; then
		"${SUDO[@]}" rm -f "$POLICY"
	fi
}
trap cleanup EXIT
if [ ! -e "$POLICY" ]; then
	# 101 = "action forbidden": invoke-rc.d and deb-systemd-invoke start nothing during the install.
	printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
	"${SUDO[@]}" chmod 755 "$POLICY"
	OWN_POLICY=1
fi

echo "ensure-prometheus: installing the prometheus package with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq -o DPkg::Lock::Timeout=300
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	-o DPkg::Lock::Timeout=300 prometheus >/dev/null

# Belt and braces: whatever the policy said, no packaged daemon keeps running or starts at boot.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	"${SUDO[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
elif command -v invoke-rc.d >/dev/null 2>&1 && [ -x /etc/init.d/prometheus ]; then
	"${SUDO[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
	"${SUDO[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
fi

for tool in prometheus promtool; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "ensure-prometheus: '$tool' still not on PATH after installing the package" >&2
		exit 1
	fi
done
echo "ensure-prometheus: $(prometheus --version 2>&1 | head -n 1)" >&2
