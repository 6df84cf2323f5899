"""Every asset key of the project, defined once: the app's tables and the pipeline's layers."""

from __future__ import annotations

import dagster as dg

# The app's tables (read only; their names in the database come from `sources:`).
APP_KIDS = dg.AssetKey(["app", "kids"])
APP_TRANSACTIONS = dg.AssetKey(["app", "transactions"])
APP_EVENTS = dg.AssetKey(["app", "app_events"])
APP_SAVINGS_GOALS = dg.AssetKey(["app", "savings_goals"])
APP_TABLES = (APP_KIDS, APP_TRANSACTIONS, APP_EVENTS, APP_SAVINGS_GOALS)

# The pipeline's assets.
RAW_KEY = dg.AssetKey(["raw", "kid_activity"])
SILVER_KEY = dg.AssetKey(["silver", "kid_weekly_analysis"])
GOLD_KEY = dg.AssetKey(["gold", "kid_weekly_reports"])
ANALYSIS_EXPORT_KEY = dg.AssetKey(["exports", "kids_analysis_json"])
REPORTS_EXPORT_KEY = dg.AssetKey(["exports", "kids_reports_json"])
PIPELINE = (RAW_KEY, SILVER_KEY, GOLD_KEY, ANALYSIS_EXPORT_KEY, REPORTS_EXPORT_KEY)

OWNERS = ["team:kidsfin"]
