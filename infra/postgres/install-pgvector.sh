#!/usr/bin/env bash
# Installs pgvector into the machine's PostgreSQL (Debian). Debian packages pgvector only for its
# newest PostgreSQL, so for other majors we build Debian's own source package (brief §10) against
# postgresql-server-dev-<major>. Idempotent: does nothing when the extension is already installed.
# Usage: sudo infra/postgres/install-pgvector.sh [major]   (default: the running server's major)
set -euo pipefail

major="${1:-}"
if [[ -z "$major" ]]; then
  major=$(psql -h 127.0.0.1 -U postgres -XAtc 'show server_version_num' 2>/dev/null | cut -c1-2 || true)
  [[ -n "$major" ]] || major=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
fi
[[ -n "$major" ]] || { echo "install-pgvector: cannot tell the PostgreSQL major version; pass it" >&2; exit 1; }

if [[ -f "/usr/share/postgresql/$major/extension/vector.control" ]]; then
  echo "install-pgvector: pgvector already installed for PostgreSQL $major"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if apt-cache show "postgresql-$major-pgvector" >/dev/null 2>&1; then
  apt-get install -y -q "postgresql-$major-pgvector"
  exit 0
fi

# Debian's source package of pgvector lives in trixie; add its deb-src entry once.
list=/etc/apt/sources.list.d/promptcraft-trixie-src.list
if [[ ! -f "$list" ]]; then
  echo "deb-src http://deb.debian.org/debian trixie main" > "$list"
fi
echo "install-pgvector: updating package lists"
apt-get update -q -o Acquire::Retries=3 >/dev/null
# With fresh lists a binary package may turn up after all (e.g. a newer Debian or PGDG): prefer it.
if apt-cache show "postgresql-$major-pgvector" >/dev/null 2>&1; then
  apt-get install -y -q "postgresql-$major-pgvector"
  exit 0
fi
apt-get install -y -q "postgresql-server-dev-$major" build-essential dpkg-dev >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "install-pgvector: fetching Debian's pgvector source"
apt-get source -q pgvector >/dev/null 2>&1 || apt-get source pgvector
src=$(find . -maxdepth 1 -type d -name 'pgvector-*' | head -1)
cd "$src"
echo "install-pgvector: building for PostgreSQL $major"
make -s PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" >/dev/null
make -s PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" install >/dev/null
echo "install-pgvector: installed $(grep default_version vector.control)"
