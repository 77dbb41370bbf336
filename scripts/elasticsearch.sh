#!/usr/bin/env bash
# scripts/elasticsearch.sh - a real Elasticsearch on 127.0.0.1 for ezd's tests.
# Installs it if missing (idempotent, non-interactive), starts it (or keeps the one
# running), waits until the cluster is green/yellow, self-tests it, and prints env lines.
#
# Usage:
#   scripts/elasticsearch.sh up       install if missing, start, wait, self-test; prints the
#                                     env lines on stdout (all else goes to stderr), also
#                                     written to .services/elasticsearch/env
#   scripts/elasticsearch.sh down     stop the server that `up` started (by its PID file only)
#   scripts/elasticsearch.sh status   print state; exit 0 if running and healthy, 3 if not
#   scripts/elasticsearch.sh selftest run the self-test against the running server
#
# Then:   eval "$(scripts/elasticsearch.sh up)"   or   . .services/elasticsearch/env
#   EZD_TEST_ES_URL=http://127.0.0.1:59200   EZD_TEST_ES_VERSION=8.19.21
#   (the Python client must have the server's major version: elasticsearch==8.*)
#
# What runs: the `integ-test-zip` distribution of Elasticsearch from Maven Central
#   (org.elasticsearch.distribution.integ-test-zip:elasticsearch:<version>:zip), fetched with
#   `mvn dependency:copy` (Maven from Debian if missing; checksums enforced) into
#   ~/.cache/ezd/ once per machine, unzipped into .services/elasticsearch/. It has no bundled
#   JDK: it runs on the machine's Java, the highest of 17..24 found, else a newer one (tried:
#   Debian's 17, the default here, and Temurin 25 via EZD_ES_JAVA_HOME; Debian's openjdk-17
#   is installed if there is no Java 17+). It carries only
#   the modules transport-netty4, x-pack-core, x-pack-security, apm: no analysis-common
#   (no asciifolding, stemmer, ngram, synonym filters, no language or pattern analyzers;
#   only the standard tokenizer; the lowercase, stop and shingle filters and the
#   standard/simple/whitespace/stop/keyword analyzers and the lowercase normalizer do exist),
#   no rest-root (GET / answers 405: the Python client's info() raises, ping() is False),
#   no ingest processors, painless, reindex, mapper-extras (search_as_you_type) or wildcard.
#   Fold diacritics and lemmatise in Python.
#   Single node (discovery.type=single-node), security off, HTTP 127.0.0.1:59200, transport
#   127.0.0.1:59300, heap 512m, disk watermarks off, wildcard index deletes allowed.
#   As root it runs as the system user `ezd-es` (created; Elasticsearch refuses root).
#   Loopback-only + single-node: the production bootstrap checks (vm.max_map_count, ...)
#   are not enforced, so no sysctl is needed.
# Files: .services/elasticsearch/{elasticsearch-<version>/ (install), config/, data/, logs/,
#   tmp/, run/elasticsearch.pid, env, startup.log}
#
# Knobs (environment): EZD_ES_TIMEOUT (default 120 s to start), EZD_ES_HEAP (default 512m),
#   EZD_ES_VERSION (default 8.19.21), EZD_ES_JAVA_HOME (a JDK >= 17 to run it with),
#   EZD_ES_ZIP (use this local integ-test-zip instead of fetching it).
# Exit status is non-zero, with a message, when anything fails to get ready.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SVC="$ROOT/.services"
ESD="$SVC/elasticsearch"
TIMEOUT="${EZD_ES_TIMEOUT:-120}"
HEAP="${EZD_ES_HEAP:-512m}"
[[ "$HEAP" =~ ^[0-9]+[kmgKMG]$ ]] || { echo "[elasticsearch] ERROR: EZD_ES_HEAP=$HEAP is not a JVM size like 512m or 1g" >&2; exit 1; }

ES_VERSION="${EZD_ES_VERSION:-8.19.21}"
ES_GAV="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip"
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ezd"
ZIP="$CACHE/elasticsearch-integ-test-zip-$ES_VERSION.zip"

ES_HOME="$ESD/elasticsearch-$ES_VERSION"
CONF="$ESD/config"
DATA="$ESD/data"
LOGS="$ESD/logs"
TMPD="$ESD/tmp"
RUN="$ESD/run"
PIDFILE="$RUN/elasticsearch.pid"
STARTUP_LOG="$ESD/startup.log"
ENV_FILE="$ESD/env"

HTTP_PORT=59200
TRANSPORT_PORT=59300
URL="http://127.0.0.1:$HTTP_PORT"
CLUSTER=ezd-test
ES_USER=ezd-es

log() { printf '[elasticsearch] %s\n' "$*" >&2; }
die() { printf '[elasticsearch] ERROR: %s\n' "$*" >&2; exit 1; }

# --------------------------------------------------------------- helpers
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_owner() { # best effort: who listens on port $1
  command -v ss >/dev/null && ss -Hltnp "sport = :$1" 2>/dev/null | sed 's/.*users:/users:/' | head -n1
}

# es_pid -> prints the server's pid if the PID file names a live Elasticsearch of ours
es_pid() {
  local pid cmd
  [[ -s "$PIDFILE" ]] || return 1
  pid="$(head -n1 "$PIDFILE" | tr -dc '0-9')"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *org.elasticsearch* && "$cmd" == *"$ESD/"* ]] || return 1
  echo "$pid"
}

APT_UPDATED=0
apt_install() {
  [[ $EUID -eq 0 ]] || die "need root to apt-get install $*"
  command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >&2 \
    || die "apt-get install $* failed"
}

PY=""
find_python() {
  PY="$(command -v python3 || true)"
  [[ -n "$PY" ]] || { apt_install python3; PY="$(command -v python3)"; }
}

# ------------------------------------------------------------------ Java
java_major() { # java_major JAVA -> e.g. 17
  "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n1
}

ES_JAVA_HOME_SEL=""
find_java() {
  # Elasticsearch 8.x runs on Java 17 or newer; prefer the highest of 17..24 (tried: 17),
  # then the lowest newer one (tried: 25).
  local c m best="" bestm=0 newer="" newerm=999
  if [[ -n "${EZD_ES_JAVA_HOME:-}" ]]; then
    [[ -x "$EZD_ES_JAVA_HOME/bin/java" ]] || die "EZD_ES_JAVA_HOME=$EZD_ES_JAVA_HOME has no bin/java"
    m="$(java_major "$EZD_ES_JAVA_HOME/bin/java")"
    [[ "${m:-0}" -ge 17 ]] 2>/dev/null || die "EZD_ES_JAVA_HOME=$EZD_ES_JAVA_HOME is Java ${m:-?}; Elasticsearch $ES_VERSION needs 17+"
    ES_JAVA_HOME_SEL="$EZD_ES_JAVA_HOME"
    return 0
  fi
  local cands=()
  if command -v java >/dev/null; then cands+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"); fi
  for c in /usr/lib/jvm/*/; do [[ -L "${c%/}" ]] || cands+=("${c%/}"); done
  for c in "${cands[@]}"; do
    [[ -x "$c/bin/java" ]] || continue
    m="$(java_major "$c/bin/java")"
    [[ "$m" =~ ^[0-9]+$ ]] || continue
    if ((m >= 17 && m <= 24 && m > bestm)); then best="$c" bestm=$m; fi
    if ((m > 24 && m < newerm)); then newer="$c" newerm=$m; fi
  done
  if [[ -z "$best" && -z "$newer" ]]; then
    log "no Java 17+ found; installing Debian's openjdk-17-jre-headless"
    apt_install openjdk-17-jre-headless
    for c in /usr/lib/jvm/*/; do
      [[ -x "${c}bin/java" && "$(java_major "${c}bin/java")" == 17 ]] && best="${c%/}" && break
    done
    [[ -n "$best" ]] || die "openjdk-17-jre-headless installed but no Java 17 under /usr/lib/jvm"
  fi
  ES_JAVA_HOME_SEL="${best:-$newer}"
}

# --------------------------------------------------------------- install
fetch_zip() {
  [[ -s "$ZIP" ]] && return 0
  mkdir -p "$CACHE"
  if [[ -n "${EZD_ES_ZIP:-}" ]]; then
    [[ -s "$EZD_ES_ZIP" ]] || die "EZD_ES_ZIP=$EZD_ES_ZIP does not exist"
    cp "$EZD_ES_ZIP" "$ZIP.tmp" && mv "$ZIP.tmp" "$ZIP"
    return 0
  fi
  command -v mvn >/dev/null || apt_install maven
  local out="$CACHE/.es-dl.$$" t0=$SECONDS
  rm -rf "$out"
  log "fetching $ES_GAV from Maven Central (mvn dependency:copy, ~107 MB)"
  # -C: fail on a checksum mismatch; the copy also lands in ~/.m2 (Maven's own cache)
  if ! mvn -B -q -C "$DEP_PLUGIN:copy" -Dartifact="$ES_GAV" -DoutputDirectory="$out" \
    -Dmdep.overWriteReleases=true >"$CACHE/.es-dl.log" 2>&1; then
    tail -n 20 "$CACHE/.es-dl.log" >&2
    rm -rf "$out"
    die "mvn could not fetch $ES_GAV (log: $CACHE/.es-dl.log); set EZD_ES_ZIP to a local copy to skip the download"
  fi
  [[ -s "$out/elasticsearch-$ES_VERSION.zip" ]] || die "mvn ran but left no $out/elasticsearch-$ES_VERSION.zip"
  mv "$out/elasticsearch-$ES_VERSION.zip" "$ZIP"
  rm -rf "$out"
  log "downloaded in $((SECONDS - t0))s: $ZIP"
}

es_install() {
  [[ -x "$ES_HOME/bin/elasticsearch" ]] && return 0
  local t0=$SECONDS
  fetch_zip
  command -v unzip >/dev/null || apt_install unzip
  mkdir -p "$ESD"
  local tmp="$ESD/.unzip.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  unzip -q "$ZIP" -d "$tmp" || { rm -rf "$tmp" "$ZIP"; die "unzip $ZIP failed (removed it; run again to re-fetch)"; }
  [[ -x "$tmp/elasticsearch-$ES_VERSION/bin/elasticsearch" ]] \
    || { rm -rf "$tmp"; die "$ZIP has no elasticsearch-$ES_VERSION/bin/elasticsearch"; }
  rm -rf "$ES_HOME"
  mv "$tmp/elasticsearch-$ES_VERSION" "$ES_HOME"
  rm -rf "$tmp"
  # the install stays owned by root and read-only for the server user
  chmod -R go+rX "$ES_HOME"
  log "installed Elasticsearch $ES_VERSION (integ-test-zip) in $((SECONDS - t0))s: $ES_HOME"
}

AS_ES=()
es_user() {
  if [[ $EUID -ne 0 ]]; then AS_ES=(); return 0; fi
  if ! id "$ES_USER" >/dev/null 2>&1; then
    log "creating system user $ES_USER (Elasticsearch refuses to run as root)"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$ES_USER" || die "could not create system user $ES_USER"
  fi
  command -v runuser >/dev/null || die "runuser (util-linux) not found"
  runuser -u "$ES_USER" -- test -x "$ES_HOME/bin" \
    || die "user $ES_USER cannot reach $ES_HOME (a parent directory not traversable?); move the checkout or chmod o+x its parents"
  AS_ES=(runuser -u "$ES_USER" --)
}

es_configure() {
  mkdir -p "$CONF" "$DATA" "$LOGS" "$TMPD" "$RUN"
  # the distribution's config (jvm.options, log4j2, ...), refreshed on every up; ours on top
  cp -R "$ES_HOME/config/." "$CONF/"
  mkdir -p "$CONF/jvm.options.d"
  cat >"$CONF/elasticsearch.yml" <<EOF
# written by scripts/elasticsearch.sh - overwritten on every 'up'
cluster.name: $CLUSTER
node.name: $CLUSTER-1
path.data: $DATA
path.logs: $LOGS
network.host: 127.0.0.1
http.port: $HTTP_PORT
transport.port: $TRANSPORT_PORT
discovery.type: single-node
xpack.security.enabled: false
# small test disks: never block writes or refuse shards for lack of space
cluster.routing.allocation.disk.threshold_enabled: false
# tests may delete indices by wildcard (ezd-test-*)
action.destructive_requires_name: false
EOF
  cat >"$CONF/jvm.options.d/ezd.options" <<EOF
# written by scripts/elasticsearch.sh
-Xms$HEAP
-Xmx$HEAP
EOF
  if [[ $EUID -eq 0 ]]; then
    local d
    for d in "$CONF" "$DATA" "$LOGS" "$TMPD" "$RUN"; do
      # a fresh machine may give the user another uid than the one that made the files
      if [[ "$(stat -c %U "$d")" != "$ES_USER" ]] || find "$d" ! -user "$ES_USER" -print -quit | grep -q .; then
        chown -R "$ES_USER:$ES_USER" "$d"
      fi
    done
  fi
  chmod 750 "$DATA"
}

# ---------------------------------------------------- self-test (python)
# es_py SUBCOMMAND: health | info | selftest, against $URL; python3 stdlib only
es_py() {
  "$PY" - "$URL" "$ES_VERSION" "$@" <<'PYEOF'
import json, sys, time, urllib.error, urllib.request, uuid

url, version, cmd = sys.argv[1], sys.argv[2], sys.argv[3]

def req(method, path, body=None, ndjson=False, ok=(200, 201)):
    data = None
    headers = {}
    if body is not None:
        if ndjson:
            data = ("\n".join(json.dumps(x) for x in body) + "\n").encode()
            headers["Content-Type"] = "application/x-ndjson"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
    r = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = raw.decode(errors="replace")
    if ok is not None and status not in ok:
        raise AssertionError("%s %s -> %s %s" % (method, path, status, json.dumps(doc)[:600]))
    return status, doc

if cmd == "health":
    _, h = req("GET", "/_cluster/health?wait_for_status=yellow&timeout=2s", ok=(200,))
    if h["status"] not in ("green", "yellow"):
        sys.exit(1)
    print(h["status"])
    sys.exit(0)

def local_node():
    # GET / (the rest-root module) is not in this distribution: it answers 405
    _, n = req("GET", "/_nodes/_local/plugins,jvm")
    return n["cluster_name"], next(iter(n["nodes"].values()))

if cmd == "info":
    cluster, node = local_node()
    _, h = req("GET", "/_cluster/health")
    print("version %s, cluster %s, health %s, java %s" % (node["version"], cluster, h["status"], node["jvm"]["version"]))
    sys.exit(0)

assert cmd == "selftest", cmd
t0 = time.monotonic()
cluster, node = local_node()
assert node["version"] == version, "server is %s, expected %s" % (node["version"], version)
_, h = req("GET", "/_cluster/health")
assert h["status"] in ("green", "yellow"), h
_, cat = req("GET", "/_cat/plugins?format=json")
modules = sorted(m["name"] for m in node["modules"])
root_status, _ = req("GET", "/", ok=None)
plugins = sorted(p["component"] for p in cat)

name = "ezd-selftest-" + uuid.uuid4().hex[:8]
v1, v2 = name + "-v1", name + "-v2"
mapping = {
    "settings": {"number_of_shards": 1, "number_of_replicas": 0},
    "mappings": {"dynamic": "strict", "properties": {
        "title": {"type": "text"},
        "body": {"type": "text"},
        "sign": {"type": "keyword"},
        "unit": {"type": "keyword"},
    }},
}
results = []
try:
    req("PUT", "/" + v1, mapping)
    docs = [
        ("1", {"title": "Skarga rodziców", "body": "skarga na dyrektora szkoły", "sign": "ZP.0001.1.2026", "unit": "ZP"}),
        ("2", {"title": "Wniosek o informację publiczną", "body": "wniosek o udostępnienie informacji", "sign": "ZP.0001.2.2026", "unit": "ZP"}),
        ("3", {"title": "Decyzja administracyjna", "body": "decyzja w sprawie dotacji", "sign": "FN.3021.7.2026", "unit": "FN"}),
    ]
    bulk = []
    for i, d in docs:
        bulk += [{"index": {"_index": v1, "_id": i}}, d]
    _, b = req("POST", "/_bulk", bulk, ndjson=True)
    assert not b["errors"], b
    req("POST", "/%s/_refresh" % v1)

    def ids(index, query):
        _, r = req("POST", "/%s/_search" % index, {"query": query})
        return sorted(x["_id"] for x in r["hits"]["hits"])

    assert ids(v1, {"match": {"body": "skarga"}}) == ["1"], "match"
    assert ids(v1, {"prefix": {"sign": "ZP.0001."}}) == ["1", "2"], "prefix on keyword"
    assert ids(v1, {"fuzzy": {"title": {"value": "skrga", "fuzziness": "AUTO"}}}) == ["1"], "fuzzy"
    assert ids(v1, {"bool": {"must": [{"match": {"title": "decyzja"}}], "filter": [{"term": {"unit": "FN"}}]}}) == ["3"], "bool+term filter"
    results.append("index/bulk/refresh/match/prefix/fuzzy/term ok")

    # versioned indices behind an alias, swapped atomically
    req("POST", "/_aliases", {"actions": [{"add": {"index": v1, "alias": name}}]})
    req("PUT", "/" + v2, mapping)
    req("POST", "/_bulk?refresh=true", [{"index": {"_index": v2, "_id": "9"}}, docs[0][1]], ndjson=True)
    req("POST", "/_aliases", {"actions": [
        {"remove": {"index": v1, "alias": name}},
        {"add": {"index": v2, "alias": name, "is_write_index": True}},
    ]})
    _, al = req("GET", "/_alias/" + name)
    assert sorted(al) == [v2], al
    assert ids(name, {"match": {"body": "skarga"}}) == ["9"], "search through alias after swap"
    req("POST", "/%s/_doc/10?refresh=true" % name, docs[1][1])  # write through the alias
    assert ids(v2, {"match_all": {}}) == ["10", "9"], "write through alias"
    results.append("alias swap v1->v2 (atomic _aliases) ok")

    # analysis available in this distribution
    def analyzer(idx, filters):
        st, r = req("PUT", "/" + idx, {"settings": {"number_of_shards": 1, "number_of_replicas": 0, "analysis": {
            "analyzer": {"folded": {"type": "custom", "tokenizer": "standard", "filter": filters}}}}}, ok=None)
        if st in (200, 201):
            _, a = req("POST", "/%s/_analyze" % idx, {"analyzer": "folded", "text": "Zażółć GĘŚLĄ jaźń"})
            req("DELETE", "/" + idx)
            return "accepted: " + " ".join(t["token"] for t in a["tokens"])
        return "refused (%s): %s" % (st, r["error"].get("reason", r["error"]) if isinstance(r, dict) else r)
    results.append("custom analyzer [lowercase]: " + analyzer(name + "-a1", ["lowercase"]))
    results.append("custom analyzer [lowercase, asciifolding]: " + analyzer(name + "-a2", ["lowercase", "asciifolding"]))
    _, a = req("POST", "/_analyze", {"analyzer": "standard", "text": "Zażółć GĘŚLĄ jaźń"})
    results.append("built-in standard analyzer: " + " ".join(t["token"] for t in a["tokens"]))
finally:
    for idx in (v1, v2, name + "-a1", name + "-a2"):
        req("DELETE", "/" + idx, ok=None)
st, _ = req("GET", "/%s,%s" % (v1, v2), ok=None)
assert st == 404, "self-test indices still there after delete"
print("modules: " + ", ".join(modules))
print("plugins: " + (", ".join(plugins) or "(none)"))
if root_status != 200:
    print("GET / answers %s (no rest-root module): the client's info() raises and ping() is False" % root_status)
for r in results:
    print(r)
print("self-test passed in %.1fs" % (time.monotonic() - t0))
PYEOF
}

es_ready() { es_py health >/dev/null 2>&1; }

rss_of() { awk '/^VmRSS:/ {printf "%d MiB", $2/1024}' "/proc/$1/status" 2>/dev/null; }

# ------------------------------------------------------------ up / down
es_up() {
  find_python
  es_install
  es_user
  local pid
  if pid="$(es_pid)"; then
    if ! es_ready; then
      log "Elasticsearch (pid $pid) running but not ready yet; waiting"
    else
      log "Elasticsearch already running (pid $pid, $URL)"
    fi
  else
    local p
    for p in $HTTP_PORT $TRANSPORT_PORT; do
      if port_open "$p"; then
        die "port $p is taken by something that isn't our Elasticsearch ($ESD) $(port_owner "$p")"
      fi
    done
    find_java
    es_configure
    rm -f "$PIDFILE"
    : >"$STARTUP_LOG"
    log "starting Elasticsearch $ES_VERSION on $URL (Java $(java_major "$ES_JAVA_HOME_SEL/bin/java") from $ES_JAVA_HOME_SEL, heap $HEAP${AS_ES:+, as $ES_USER})"
    local t0=$SECONDS rc=0
    # -d -p: the launcher returns once the server JVM is up and has written its PID file;
    # setsid: a Ctrl-C in the caller must not reach the server; 9>&-: don't inherit our lock
    setsid timeout -k 10 "$TIMEOUT" "${AS_ES[@]}" env -C "$ESD" -i \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
      HOME="$TMPD" ES_PATH_CONF="$CONF" ES_JAVA_HOME="$ES_JAVA_HOME_SEL" ES_TMPDIR="$TMPD" \
      "$ES_HOME/bin/elasticsearch" -d -p "$PIDFILE" >>"$STARTUP_LOG" 2>&1 </dev/null 9>&- || rc=$?
    if [[ $rc -ne 0 ]]; then
      tail -n 30 "$STARTUP_LOG" >&2
      # the server's own log, if this start wrote to it
      if [[ -n "$(find "$LOGS/$CLUSTER.log" -newer "$STARTUP_LOG" 2>/dev/null)" ]]; then tail -n 20 "$LOGS/$CLUSTER.log" >&2; fi
      if pid="$(es_pid)"; then kill -KILL "$pid" 2>/dev/null || true; fi
      rm -f "$PIDFILE"
      [[ $rc -eq 124 || $rc -eq 137 ]] && die "Elasticsearch did not start within ${TIMEOUT}s (logs: $STARTUP_LOG, $LOGS/)"
      die "Elasticsearch failed to start (exit $rc; logs: $STARTUP_LOG, $LOGS/$CLUSTER.log)"
    fi
    pid="$(es_pid)" || { tail -n 30 "$STARTUP_LOG" >&2; die "Elasticsearch launcher succeeded but left no live PID in $PIDFILE"; }
    local end=$((SECONDS + TIMEOUT))
    until es_ready; do
      kill -0 "$pid" 2>/dev/null || { tail -n 30 "$LOGS/$CLUSTER.log" >&2 || true; die "Elasticsearch (pid $pid) exited during start (logs: $LOGS/)"; }
      ((SECONDS < end)) || die "Elasticsearch not green/yellow on $URL within ${TIMEOUT}s (logs: $LOGS/)"
      sleep 0.5
    done
    log "Elasticsearch up in $((SECONDS - t0))s (pid $pid, RSS $(rss_of "$pid"))"
  fi
  local end=$((SECONDS + TIMEOUT))
  until es_ready; do
    es_pid >/dev/null || die "Elasticsearch exited (logs: $LOGS/)"
    ((SECONDS < end)) || die "Elasticsearch not green/yellow on $URL within ${TIMEOUT}s (logs: $LOGS/)"
    sleep 0.5
  done
  local out
  out="$(es_py selftest 2>&1)" || { echo "$out" >&2; die "self-test against $URL failed"; }
  sed 's/^/  /' <<<"$out" >&2
  log "ok: $(es_py info) (pid $(es_pid), RSS $(rss_of "$(es_pid)"))"
}

es_down() {
  local pid i
  if pid="$(es_pid)"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      log "Elasticsearch (pid $pid) ignored SIGTERM for 30 s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "Elasticsearch stopped (pid $pid)"
  else
    log "Elasticsearch not running"
    if port_open "$HTTP_PORT"; then log "note: port $HTTP_PORT is in use by something else $(port_owner "$HTTP_PORT")"; fi
  fi
  rm -f "$PIDFILE"
}

es_status() {
  local pid info
  find_python
  if pid="$(es_pid)"; then
    if info="$(es_py info 2>/dev/null)"; then
      echo "elasticsearch: running  pid $pid  $URL  $info  RSS $(rss_of "$pid")  data $DATA"
      return 0
    fi
    echo "elasticsearch: starting or unhealthy  pid $pid  $URL (logs: $LOGS/)"
    return 3
  fi
  if [[ -x "$ES_HOME/bin/elasticsearch" ]]; then
    echo "elasticsearch: stopped (installed: $ES_VERSION in $ES_HOME)"
  else
    echo "elasticsearch: stopped (not installed; 'up' fetches $ES_VERSION)"
  fi
  return 3
}

write_env() {
  mkdir -p "$ESD"
  {
    echo "export EZD_TEST_ES_URL=$URL"
    echo "export EZD_TEST_ES_VERSION=$ES_VERSION"
  } >"$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

with_lock() {
  mkdir -p "$ESD"
  if command -v flock >/dev/null; then
    exec 9>"$ESD/.lock"
    if ! flock -n 9; then
      log "waiting for another elasticsearch.sh (lock $ESD/.lock)"
      flock -w 900 9 || die "another elasticsearch.sh still holds $ESD/.lock after 900 s"
    fi
  fi
}

main() {
  local cmd="${1:-}"
  case "$cmd" in
  up)
    with_lock
    local t0=$SECONDS
    es_up
    write_env
    log "ready in $((SECONDS - t0))s; env: $ENV_FILE"
    cat "$ENV_FILE"
    ;;
  down)
    with_lock
    es_down
    ;;
  status) es_status ;;
  selftest)
    find_python
    es_pid >/dev/null || die "Elasticsearch not running; run: $0 up"
    es_py selftest
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    [[ -z "$cmd" || "$cmd" == -h || "$cmd" == --help || "$cmd" == help ]] && exit 0
    exit 2
    ;;
  esac
}

main "$@"
