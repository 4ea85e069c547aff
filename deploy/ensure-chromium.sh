#!/usr/bin/env bash
# Make a headless Chromium available for the report-rendering test; idempotent.
# Installs Debian's `chromium` package with apt-get (sudo only when not root) when it is missing.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure-chromium: no chromium on PATH and no apt-get; install Chromium to run the report test" >&2
	exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	SUDO=(sudo)
fi
echo "ensure-chromium: installing the chromium package with apt-get" >&2
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq -o DPkg::Lock::Timeout=300
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	-o DPkg::Lock::Timeout=300 chromium >/dev/null
