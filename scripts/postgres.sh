#!/usr/bin/env bash
# Starts the PostgreSQL server the tests use (the PostgreSQL store, issue 18)
# and creates their role: cairn/cairn on 127.0.0.1:5432, allowed to create
# databases (internal/pgtest makes a fresh one per test). Installs Debian's
# postgresql package when it is missing. Needs root, as CI runs; elsewhere it
# only reports what it could not do.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
	if [ "$(id -u)" != 0 ]; then echo "scripts/postgres.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; fi
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if [ "$(id -u)" != 0 ]; then echo "scripts/postgres.sh: not root: leaving the server as it is" >&2; exit 0; fi
# Debian's package makes a cluster "main" of its version; start every one that is down.
pg_lsclusters -h | while read -r ver name port status _; do
	if [ "$status" != online ]; then pg_ctlcluster "$ver" "$name" start; fi
done
for _ in $(seq 1 60); do
	su postgres -c 'psql -qAtc "SELECT 1"' >/dev/null 2>&1 && break
	sleep 0.5
done
su postgres -c "psql -qAt" <<'SQL' >/dev/null
DO $$BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cairn') THEN
		CREATE ROLE cairn LOGIN CREATEDB PASSWORD 'cairn';
	END IF;
END$$;
SQL
echo "PostgreSQL: $(su postgres -c 'psql -qAtc "SHOW server_version"') on port $(su postgres -c 'psql -qAtc "SHOW port"')"
