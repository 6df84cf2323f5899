"""The jobs: a week end to end, and collecting a week's Batch API answers. Both are
partitioned by week, as the assets they select are (Dagster infers it from them)."""

from __future__ import annotations

import dagster as dg

from kidsfin_assets.defs.keys import GOLD_KEY, PIPELINE, REPORTS_EXPORT_KEY

JOB_NAME = "weekly_reports_job"
COLLECT_JOB_NAME = "collect_batches_job"

weekly_reports_job = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.assets(*PIPELINE),
    description=(
        "One week end to end: raw/kid_activity and silver/kid_weekly_analysis (both read "
        "the app's tables) → gold/kid_weekly_reports → the JSON exports. new_week_sensor "
        "launches it for each new or changed week; launch it from the UI for any other week."
    ),
)

collect_batches_job = dg.define_asset_job(
    COLLECT_JOB_NAME,
    selection=dg.AssetSelection.assets(GOLD_KEY, REPORTS_EXPORT_KEY),
    description=(
        "Gold and the reports export for one week: collects the week's finished Batch "
        "API batches and submits again what must be. openai_batch_sensor launches it."
    ),
)
