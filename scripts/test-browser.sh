#!/usr/bin/env bash
# Installs (Debian, as root) the browser the dashboard tests drive: Debian's chromium
# package, used through playwright-core (never a browser download). Idempotent.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ]; then echo "missing package: chromium (run as root to install)" >&2; exit 1; fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)" >&2
