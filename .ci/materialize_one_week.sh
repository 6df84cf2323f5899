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
export KIDSFIN_EXPORTS__EXPORT_DIR="$(mktemp -d)"
export DAGSTER_HOME="$(mktemp -d)"
unset OPENAI_API_KEY OPENAI_BASE_URL

.venv/bin/python -m kidsfin_demo --kids 10 --weeks 6
WEEK="$(psql "$KIDSFIN_DATABASE_URL" -tAc \
  "SELECT to_char(date_trunc('week', max(occurred_at) AT TIME ZONE 'Asia/Ho_Chi_Minh'), 'YYYY-MM-DD') FROM transactions")"
# Silver reads raw's W-2, W-1 and W, and its savings balance raw's weeks since the data
# began: on a fresh database raw's weeks before W go first, from the first week with rows
# (one run over the range; raw refuses to leave a gap), as README's "Use it" says.
FIRST="$(psql "$KIDSFIN_DATABASE_URL" -tAc \
  "SELECT to_char(date_trunc('week', min(occurred_at) AT TIME ZONE 'Asia/Ho_Chi_Minh'), 'YYYY-MM-DD') FROM transactions")"
LAST="$(date -d "$WEEK - 7 days" +%F)"
echo "materialising raw $FIRST...$LAST, then every asset of week $WEEK"
.venv/bin/dagster asset materialize -m kidsfin_assets.definitions --select raw/kid_activity \
  --partition-range "$FIRST...$LAST"
.venv/bin/dagster asset materialize -m kidsfin_assets.definitions --select '*' --partition "$WEEK"

SILVER="$(psql "$KIDSFIN_DATABASE_URL" -tAc "SELECT count(*) FROM kidsfin.kid_weekly_analysis WHERE week_start = '$WEEK'")"
GOLD="$(psql "$KIDSFIN_DATABASE_URL" -tAc "SELECT count(*) FROM kidsfin.kid_weekly_reports WHERE week_start = '$WEEK'")"
echo "silver rows: $SILVER, gold rows: $GOLD"
test "$SILVER" -ge 10
test "$GOLD" -eq "$SILVER"
test -s "$KIDSFIN_EXPORTS__EXPORT_DIR/kids_analysis_$WEEK.json"
test -s "$KIDSFIN_EXPORTS__EXPORT_DIR/kids_reports_$WEEK.json"
echo "materialize check: ok"

echo "== the same week through an OpenAI-compatible server (the suite's, on 127.0.0.1)"
SERVER_LOG="$(mktemp)"
.venv/bin/python -m openai_test_server --port 0 --api-key sk-ci-only \
  --latency 0.05 --fault-rate 0.1 --faults 429,500 --fault-retry-after 0.2 > "$SERVER_LOG" &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true; psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true' EXIT
for _ in $(seq 1 50); do grep -q READY "$SERVER_LOG" && break; sleep 0.2; done
export OPENAI_BASE_URL="$(awk '/READY/ {print $2}' "$SERVER_LOG")"
export OPENAI_API_KEY=sk-ci-only KIDSFIN_OPENAI__RETRY_INITIAL_WAIT_SECONDS=0.1
.venv/bin/dagster asset materialize -m kidsfin_assets.definitions --select '*' --partition "$WEEK"
AI="$(psql "$KIDSFIN_DATABASE_URL" -tAc "SELECT count(*) FROM kidsfin.kid_weekly_reports WHERE week_start = '$WEEK' AND writer = 'openai'")"
echo "AI reports: $AI of $SILVER"
test "$AI" -eq "$SILVER"
echo "materialize with the OpenAI resource: ok"
