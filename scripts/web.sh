#!/usr/bin/env bash
# Front end of the staff web application, idempotent and non-interactive:
#  - npm ci of the front-end packages in package.json / package-lock.json (htmx, bpmn-js viewer,
#    axe-core for the accessibility tests) into node_modules/, served as static files;
#  - Debian's chromium and chromium-driver for the browser tests, when missing (never a browser
#    downloaded by a test tool);
#  - the gettext catalogues compiled (.po -> .mo).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

stamp=node_modules/.ezd-lock-sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing front-end packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

if [ "${EZD_SKIP_CHROMIUM:-}" != "1" ] && ! [ -x /usr/bin/chromium ] ; then
  echo "installing Debian's chromium and chromium-driver"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
fi

.venv/bin/pybabel -q compile --use-fuzzy -d api/web/locale -D messages
echo "web front end ready (node_modules, $(/usr/bin/chromium --version 2>/dev/null || echo 'no chromium'), catalogues)"
