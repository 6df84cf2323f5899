"""Materialising weeks as a user of the UI does, through the mutations the UI itself sends:
a run of the whole graph for one week (the asset graph's "Materialize all" with one
partition), and backfills of a range of weeks (the same with a range). The daemon runs
them, as under `make dev`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tools.ui_check.stack import LOCATION, REPOSITORY, CheckFailed, GraphQL

RAW = ("raw", "kid_activity")
SILVER = ("silver", "kid_weekly_analysis")
GOLD = ("gold", "kid_weekly_reports")
ANALYSIS_EXPORT = ("exports", "kids_analysis_json")
REPORTS_EXPORT = ("exports", "kids_reports_json")
PIPELINE = (RAW, SILVER, GOLD, ANALYSIS_EXPORT, REPORTS_EXPORT)
RUN_TIMEOUT = 900.0  # seconds, for one run or one backfill

LAUNCH_RUN = """
mutation ($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

RUN_STATUS = """
query ($id: ID!) {
  runOrError(runId: $id) {
    __typename
    ... on Run { runId status assetSelection { path } tags { key value } }
    ... on Error { message }
  }
}
"""

RUN_TIMES = """
query ($id: ID!) {
  runOrError(runId: $id) {
    ... on Run { creationTime startTime endTime stepStats { stepKey } }
  }
}
"""

BACKFILL_STATUS = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      id status
      error { message }
      runs(limit: 100) { runId status assetSelection { path } tags { key value } }
    }
    ... on Error { message }
  }
}
"""

FINISHED_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
FINISHED_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


@dataclass
class Run:
    run_id: str
    status: str
    assets: list[tuple[str, ...]]
    tags: dict[str, str]

    @classmethod
    def from_graphql(cls, data: dict[str, Any]) -> Run:
        return cls(
            run_id=data["runId"],
            status=data["status"],
            assets=sorted(tuple(a["path"]) for a in data["assetSelection"] or []),
            tags={t["key"]: t["value"] for t in data["tags"]},
        )

    @property
    def partitions(self) -> str:
        tags = self.tags
        if "dagster/partition" in tags:
            return tags["dagster/partition"]
        start = tags.get("dagster/asset_partition_range_start")
        return f"{start}...{tags.get('dagster/asset_partition_range_end')}"


def _keys(assets: tuple[tuple[str, ...], ...]) -> list[dict[str, list[str]]]:
    return [{"path": list(key)} for key in assets]


def _launched(result: dict[str, Any], what: str) -> dict[str, Any]:
    if result["__typename"] in ("LaunchRunSuccess", "LaunchBackfillSuccess"):
        return result
    detail = result.get("message") or result.get("errors") or result
    raise CheckFailed(f"launching {what} failed ({result['__typename']}): {detail}")


def launch_week(gql: GraphQL, week: str, assets: tuple[tuple[str, ...], ...] = PIPELINE) -> str:
    """One run of the selected assets (and their checks) for one week, as "Materialize all"
    with one partition launches it."""
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "pipelineName": "__ASSET_JOB",
            "assetSelection": _keys(assets),
        },
        "mode": "default",
        "runConfigData": {},
        "executionMetadata": {
            "tags": [
                {"key": "dagster/partition", "value": week},
                {"key": "kidsfin/source", "value": "ui-check"},
            ]
        },
    }
    data = gql(LAUNCH_RUN, {"params": params})["launchPipelineExecution"]
    return _launched(data, f"week {week}")["run"]["runId"]


def launch_backfill(gql: GraphQL, weeks: list[str], assets: tuple[tuple[str, ...], ...]) -> str:
    """A backfill of the selected assets over `weeks`, as the launch dialog sends it."""
    params = {
        "assetSelection": _keys(assets),
        "partitionNames": weeks,
        "fromFailure": False,
        "tags": [{"key": "kidsfin/source", "value": "ui-check"}],
        "title": f"ui-check {'/'.join(k[0] for k in assets)} {weeks[0]}...{weeks[-1]}",
    }
    data = gql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    return _launched(data, f"backfill {weeks[0]}...{weeks[-1]}")["backfillId"]


def wait_for_run(gql: GraphQL, run_id: str, timeout: float = RUN_TIMEOUT) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gql.check_alive()
        data = gql(RUN_STATUS, {"id": run_id})["runOrError"]
        if data["__typename"] != "Run":
            raise CheckFailed(f"run {run_id}: {data.get('message', data)}")
        if data["status"] in FINISHED_RUN:
            return Run.from_graphql(data)
        time.sleep(2.0)
    raise CheckFailed(f"run {run_id} did not finish within {timeout:.0f} s")


def run_times(gql: GraphQL, run_id: str) -> dict[str, float]:
    """A finished run's seconds queued (created to started) and running (started to
    ended), as the run's record has them, and its steps."""
    data = gql(RUN_TIMES, {"id": run_id})["runOrError"]
    created, started, ended = data["creationTime"], data["startTime"], data["endTime"]
    return {
        "queued_s": round(started - created, 1),
        "running_s": round(ended - started, 1),
        "steps": len(data["stepStats"]),
    }


def wait_for_backfill(gql: GraphQL, backfill_id: str, timeout: float = RUN_TIMEOUT) -> list[Run]:
    """The backfill's runs, once it has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gql.check_alive()
        data = gql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if data["__typename"] != "PartitionBackfill":
            raise CheckFailed(f"backfill {backfill_id}: {data.get('message', data)}")
        runs = [Run.from_graphql(r) for r in data["runs"]]
        unfinished = [r for r in runs if r.status not in FINISHED_RUN]
        if data["status"] in FINISHED_BACKFILL and not unfinished:
            if data["status"] not in ("COMPLETED", "COMPLETED_SUCCESS"):
                error = (data.get("error") or {}).get("message", "")
                raise CheckFailed(f"backfill {backfill_id} ended {data['status']}: {error}")
            return sorted(runs, key=lambda r: r.partitions)
        time.sleep(2.0)
    raise CheckFailed(f"backfill {backfill_id} did not finish within {timeout:.0f} s")


def require_success(runs: list[Run], what: str) -> None:
    failed = [r for r in runs if r.status != "SUCCESS"]
    if failed:
        listed = ", ".join(f"{r.run_id} ({r.partitions}: {r.status})" for r in failed)
        raise CheckFailed(f"{what}: runs did not succeed: {listed} (see them in the UI)")


BACKFILL_IDS = """
{
  partitionBackfillsOrError(limit: 50) {
    __typename
    ... on PartitionBackfills { results { id } }
    ... on Error { message }
  }
}
"""

RUN_IDS = """
query ($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId } }
    ... on Error { message }
  }
}
"""


def backfill_ids(gql: GraphQL) -> set[str]:
    data = gql(BACKFILL_IDS)["partitionBackfillsOrError"]
    if data["__typename"] != "PartitionBackfills":
        raise CheckFailed(f"listing backfills: {data.get('message', data)}")
    return {b["id"] for b in data["results"]}


def week_run_ids(gql: GraphQL, week: str) -> set[str]:
    """The runs tagged with `week` as their one partition."""
    variables = {"filter": {"tags": [{"key": "dagster/partition", "value": week}]}}
    data = gql(RUN_IDS, variables)["runsOrError"]
    if data["__typename"] != "Runs":
        raise CheckFailed(f"listing runs: {data.get('message', data)}")
    return {r["runId"] for r in data["results"]}


def new_one(before: set[str], list_now, what: str, timeout: float = 60.0) -> str:
    """The one id `list_now()` has and `before` had not: what a click just launched."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = list_now() - before
        if len(new) == 1:
            return new.pop()
        if len(new) > 1:
            raise CheckFailed(f"{what}: {len(new)} launched at once, not one: {sorted(new)}")
        time.sleep(1.0)
    raise CheckFailed(f"{what}: nothing was launched within {timeout:.0f} s of the click")
