#!/usr/bin/env bash
# Loads the demo data into a fresh PostgreSQL database, materialises the last demo week
# with `dagster asset materialize` (offline writer), and checks that the rows arrived.
set -euo pipefail
cd "$(dirname "$0")/.."
DB="kidsfin_ci_$$"
ADMIN="postgresql://postgres@127.0.0.1:5432/postgres"
psql "$ADMIN" -qc "CREATE DATABASE $DB"
trap 'psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true' EXIT
export KIDSFIN_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$DB"
export KIDSFIN_EXPORT_DIR="$(mktemp -d)"
export DAGSTER_HOME="$(mktemp -d)"
unset OPENAI_API_KEY OPENAI_BASE_URL

.venv/bin/python -m kidsfin_assets.demo_data --kids 10 --weeks 6
WEEK="$(psql "$KIDSFIN_DATABASE_URL" -tAc \
  "SELECT to_char(date_trunc('week', max(occurred_at) AT TIME ZONE 'Asia/Ho_Chi_Minh'), 'YYYY-MM-DD') FROM transactions")"
echo "materialising week $WEEK"
.venv/bin/dagster asset materialize -m kidsfin_assets.definitions --select '*' --partition "$WEEK"

SILVER="$(psql "$KIDSFIN_DATABASE_URL" -tAc "SELECT count(*) FROM kidsfin.kid_weekly_analysis WHERE week_start = '$WEEK'")"
GOLD="$(psql "$KIDSFIN_DATABASE_URL" -tAc "SELECT count(*) FROM kidsfin.kid_weekly_reports WHERE week_start = '$WEEK'")"
echo "silver rows: $SILVER, gold rows: $GOLD"
test "$SILVER" -ge 10
test "$GOLD" -eq "$SILVER"
test -s "$KIDSFIN_EXPORT_DIR/kids_analysis_$WEEK.json"
test -s "$KIDSFIN_EXPORT_DIR/kids_reports_$WEEK.json"
echo "materialize check: ok"
