#!/usr/bin/env bash
# Installs what the headless-browser tests need: Debian's chromium. Does
# nothing when a chromium is already on PATH (or CONFLUX_CHROMIUM names
# one). .ci/run calls it; run it by hand (as root) before
# `go test ./test/browser/...` on a new machine.
set -euo pipefail

if [ -n "${CONFLUX_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "test/browser/install.sh: chromium is missing; run as root (or: sudo apt-get install chromium)" >&2
  exit 1
fi
echo "installing chromium (Debian's package) for test/browser"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null ||
  { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null; }
command -v chromium >/dev/null
