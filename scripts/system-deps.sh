#!/usr/bin/env bash
# System packages the test suite needs beyond the Python ones in pyproject.toml: Debian's Chromium, which the MLflow UI
# browser test drives through Playwright (Playwright's own browser download fails offline). Used by `make test` and
# by .ci/run, so a fresh machine needs nothing installed by hand. Where it cannot install (not root, no apt-get, no
# package mirror), it prints one hint and exits 0: the other tests still run, and the browser test names what is missing.
set -uo pipefail
[ -x /usr/bin/chromium ] && exit 0
hint="hint: the MLflow UI browser test needs Debian's chromium at /usr/bin/chromium; as root: apt-get install -y chromium"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "$hint" >&2
  exit 0
fi
echo "installing Debian's chromium for the browser test (once)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; } </dev/null >/tmp/pix2pix-system-deps.log 2>&1; then
  echo "$hint (apt-get failed: see /tmp/pix2pix-system-deps.log)" >&2
fi
exit 0
