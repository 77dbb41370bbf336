#!/usr/bin/env bash
# Dependency vulnerability audit of the locked environment (.venv, installed from uv.lock) with
# pip-audit, strict: a dependency that cannot be audited fails the run, like a finding does.
# The ezd package itself (editable) is skipped: it is our code, not a published release.
#
# When the vulnerability service cannot be reached at all (every dependency "not found" or a
# connection error: offline machines, mirrors without PyPI's JSON API) nothing was checked;
# the script then says so in one line, "AUDIT NOT PERFORMED: vulnerability service unreachable",
# and exits 0 so the lint still runs offline. EZD_AUDIT_REQUIRED=1 (CI with network) makes that
# a failure. Real findings always fail.
#
#   EZD_AUDIT_TIMEOUT  seconds per request (default 10); the whole run is capped at 5 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."

AUDIT=.venv/bin/pip-audit
TIMEOUT="${EZD_AUDIT_TIMEOUT:-10}"
REQUIRED="${EZD_AUDIT_REQUIRED:-0}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

run() { # run OUT_JSON [pip-audit options...]; stderr to $tmp/err
    local out="$1"
    shift
    timeout 300 "$AUDIT" --skip-editable --progress-spinner off --timeout "$TIMEOUT" \
        --desc off -f json -o "$out" "$@" >"$tmp/stdout" 2>"$tmp/err"
}

not_performed() {
    echo "AUDIT NOT PERFORMED: vulnerability service unreachable ($1)"
    if [ "$REQUIRED" = "1" ]; then
        echo "EZD_AUDIT_REQUIRED=1: failing" >&2
        exit 1
    fi
    exit 0
}

# Summary of a JSON report: "<audited> <skipped-unreachable> <skipped-other> <vulnerabilities>".
summarise() {
    .venv/bin/python - "$1" <<'EOF'
import json, sys

deps = json.load(open(sys.argv[1]))["dependencies"]
unreachable = ("not found on PyPI", "Connection", "connection", "timed out", "Max retries")
audited = [d for d in deps if "skip_reason" not in d]
skipped = [d for d in deps if "skip_reason" in d and "editable" not in d["skip_reason"]]
gone = [d for d in skipped if any(u in d["skip_reason"] for u in unreachable)]
vulns = [(d["name"], d["version"], v["id"], v.get("fix_versions", [])) for d in audited
         for v in d.get("vulns", [])]
print(len(audited), len(gone), len(skipped) - len(gone), len(vulns))
for name, version, vid, fixes in vulns:
    print(f"  {name} {version}: {vid} (fixed in {', '.join(fixes) or 'no release yet'})",
          file=sys.stderr)
for d in skipped:
    if d not in gone:
        print(f"  {d['name']}: {d['skip_reason']}", file=sys.stderr)
EOF
}

# 1. The strict audit: passes only when every dependency was checked and nothing was found.
run "$tmp/strict.json" --strict
rc=$?
if [ "$rc" = 0 ]; then
    read -r audited _ _ _ < <(summarise "$tmp/strict.json" 2>/dev/null)
    echo "pip-audit: no known vulnerabilities in ${audited:-all} dependencies"
    exit 0
fi
if [ "$rc" = 124 ]; then
    not_performed "no answer within 5 minutes"
fi
if [ -s "$tmp/strict.json" ] && grep -q '"vulns": \[{' "$tmp/strict.json"; then
    summarise "$tmp/strict.json" >/dev/null
    echo "pip-audit: known vulnerabilities found (see above)" >&2
    exit 1
fi
if grep -qiE "connection|timed out|max retries|name resolution|unreachable" "$tmp/err"; then
    not_performed "$(grep -m1 -oiE '[^:]*(connection|timed out|max retries|name resolution)[^.]*' "$tmp/err" | head -c 160)"
fi

# 2. The strict run stopped at a dependency it could not audit: find out whether that was all of
#    them (the service is not there) or some (a real gap, which fails like a finding).
run "$tmp/all.json"
if [ "$?" != 0 ]; then
    if [ "$(wc -c <"$tmp/all.json" 2>/dev/null || echo 0)" -lt 3 ]; then
        cat "$tmp/err" >&2
        grep -qiE "connection|timed out|max retries|name resolution" "$tmp/err" &&
            not_performed "connection error"
        echo "pip-audit failed" >&2
        exit 1
    fi
fi
if ! read -r audited gone other vulns < <(summarise "$tmp/all.json"); then
    cat "$tmp/err" >&2
    echo "pip-audit: no report" >&2
    exit 1
fi
if [ "$vulns" != 0 ]; then
    echo "pip-audit: $vulns known vulnerabilities found (see above)" >&2
    exit 1
fi
if [ "$audited" = 0 ] && [ "$other" = 0 ] && [ "$gone" != 0 ]; then
    not_performed "all $gone dependencies \"not found\" by the service"
fi
echo "pip-audit --strict: $audited dependencies audited, $((gone + other)) could not be (see above)" >&2
exit 1
