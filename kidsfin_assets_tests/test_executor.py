"""The code location's executor (defs/executor.py): a run's steps in the run's own process by
default, a process each with `processes: true`; either way a step asking for a retry is
retried and a step in the `openai` pool holds one of its slots while it runs (what large
weeks need). A real run through an instance, not `dg.materialize` (which is in process
whatever the job's executor)."""

import dagster as dg
import pytest

from kidsfin_assets.definitions import STEP_EXECUTOR, build_definitions
from kidsfin_assets.defs.assets.gold import OPENAI_POOL
from kidsfin_assets.defs.executor import step_executor
from kidsfin_assets.defs.jobs import JOB_NAME
from kidsfin_assets.defs.resources import load_settings


@dg.asset(pool=OPENAI_POOL)
def pooled_and_retried(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    info = context.instance.event_log_storage.get_concurrency_info(OPENAI_POOL)
    held = [slot for slot in info.claimed_slots if slot.run_id == context.run_id]
    if context.retry_number == 0:
        raise dg.RetryRequested(max_retries=1, seconds_to_wait=0.1)
    return dg.MaterializeResult(metadata={"slots_held": len(held), "limit": info.limit or 0})


def probe_job() -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=[pooled_and_retried],
        jobs=[dg.define_asset_job("probe", selection=[pooled_and_retried])],
        executor=step_executor,
    )
    return defs.resolve_job_def("probe")


def test_the_code_location_runs_steps_with_the_step_executor() -> None:
    defs = build_definitions(load_settings())
    assert STEP_EXECUTOR is step_executor
    assert defs.resolve_job_def(JOB_NAME).executor_def is step_executor


@pytest.mark.parametrize("processes", [False, True])
def test_retries_and_the_openai_pool_hold_in_either_mode(processes: bool) -> None:
    overrides = {"concurrency": {"pools": {"default_limit": 1}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        run_config = {"execution": {"config": {"processes": processes}}}
        with dg.execute_job(
            dg.reconstructable(probe_job), instance=instance, run_config=run_config
        ) as result:
            assert result.success
            events = result.all_events
            retried = [e for e in events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
            assert len(retried) == 1
            engine = " ".join(e.message or "" for e in events if e.is_engine_event)
            if processes:
                assert "multiprocess executor" in engine
            else:
                assert "in process" in engine
            (materialization,) = result.asset_materializations_for_node("pooled_and_retried")
            meta = materialization.metadata
            assert meta["slots_held"].value == 1 and meta["limit"].value == 1
            info = instance.event_log_storage.get_concurrency_info(OPENAI_POOL)
            assert info.claimed_slots == []  # released when the step finished
