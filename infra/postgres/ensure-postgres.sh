#!/usr/bin/env bash
# Makes sure the machine's PostgreSQL (Debian packaging) is running and has the test database.
#   1. starts the cluster if it does not answer (pg_ctlcluster, bypassing systemd, which containers
#      and CI machines don't run), and waits until it accepts connections;
#   2. creates the database (default `test`) if it is missing;
#   3. says whether pgvector is available (infra/postgres/install-pgvector.sh installs it).
# Idempotent; safe to run on every CI run and by hand.
#
# Usage: infra/postgres/ensure-postgres.sh [--recreate] [database]
#   --recreate  drop the database first (WITH (FORCE)) so that it starts empty — CI uses this on a
#               database of its own, so that every run migrates from scratch and no state left by
#               earlier runs or other branches (e.g. a renamed migration) can decide the result.
# Env:   PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres), PG_MAJOR (newest in /etc/postgresql),
#        PG_CLUSTER (main), PG_WAIT_SECONDS (60)
set -euo pipefail

recreate=false
if [[ "${1:-}" == --recreate ]]; then
  recreate=true
  shift
fi
database="${1:-test}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
cluster="${PG_CLUSTER:-main}"
wait_seconds="${PG_WAIT_SECONDS:-60}"

say() { echo "ensure-postgres: $*"; }
die() { echo "ensure-postgres: $*" >&2; exit 1; }

command -v psql >/dev/null || die "psql not found; install PostgreSQL (apt-get install postgresql) first"

answers() { pg_isready -q -h "$PGHOST" -p "$PGPORT" -t 2 2>/dev/null; }

if answers; then
  say "PostgreSQL answers on $PGHOST:$PGPORT"
else
  major="${PG_MAJOR:-$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)}"
  [[ -n "$major" ]] || die "nothing answers on $PGHOST:$PGPORT and no cluster under /etc/postgresql to start"
  command -v pg_ctlcluster >/dev/null || die "nothing answers on $PGHOST:$PGPORT and pg_ctlcluster is missing (postgresql-common)"
  say "starting PostgreSQL $major/$cluster"
  # --skip-systemctl-redirect: start the server directly even where systemd would be asked (it is not running here).
  # A cluster that is already starting, or running on another port, makes this fail: the wait below decides.
  if [[ $EUID -eq 0 || "$(id -un)" == postgres ]]; then
    pg_ctlcluster --skip-systemctl-redirect "$major" "$cluster" start || say "pg_ctlcluster returned $? (checking whether it answers anyway)"
  else
    sudo -n pg_ctlcluster --skip-systemctl-redirect "$major" "$cluster" start || say "could not start it as $(id -un) (needs root or postgres)"
  fi
  for ((i = 0; i < wait_seconds; i++)); do
    answers && break
    sleep 1
  done
  answers || die "PostgreSQL did not answer on $PGHOST:$PGPORT within ${wait_seconds}s; see /var/log/postgresql/postgresql-$major-$cluster.log"
  say "PostgreSQL $major/$cluster is up on $PGHOST:$PGPORT"
fi

# Through stdin, because psql interpolates :'db' (quoted safely) there and not in -c.
exists=$(psql -XAtq -d postgres -v ON_ERROR_STOP=1 -v db="$database" \
  <<<"select 1 from pg_database where datname = :'db'" 2>&1) || die "cannot query $PGHOST:$PGPORT as $PGUSER: $exists"
if [[ "$exists" == 1 && $recreate == true ]]; then
  psql -XAtq -d postgres -v ON_ERROR_STOP=1 -v db="$database" <<<"drop database :\"db\" with (force)" >/dev/null
  say "dropped database \"$database\" (--recreate)"
  exists=""
fi
if [[ "$exists" == 1 ]]; then
  say "database \"$database\" exists"
else
  createdb -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" "$database"
  say "created database \"$database\""
fi

version=$(psql -XAtq -d "$database" -c "select default_version from pg_available_extensions where name = 'vector'" </dev/null || true)
if [[ -n "$version" ]]; then
  say "pgvector $version available"
else
  say "WARNING: pgvector is not installed for this server; run infra/postgres/install-pgvector.sh"
fi
