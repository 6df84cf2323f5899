"""How a run's steps execute: in the run's own process by default, or each in a process of
its own (run config `execution: {config: {processes: true}}`).

A small week's steps take a fraction of a second each, and starting a process per step (even
forked from a server that imported everything once) cost more than the work: in the run's
own process a demo week's steps run back to back. What large weeks need holds either way:
each step's retries (gold asks for them with `dg.RetryRequested`; both executors honour them)
and the `openai` concurrency pool (each executor claims the pool's slots for the gold step
from the instance, across all runs). Processes of their own add isolation (a step's memory
goes with its process) and run the analysis export beside gold.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

# Forked from a server that imported Dagster and the project once per run, not a new
# interpreter importing them for every step.
FORKSERVER = {"forkserver": {"preload_modules": ["kidsfin_assets.definitions"]}}


@dg.configured(
    dg.multi_or_in_process_executor,
    config_schema={
        "processes": dg.Field(
            bool,
            default_value=False,
            description=(
                "Run each step in a process of its own (forked from a preloaded server) "
                "instead of in the run's own process, one after the other."
            ),
        ),
        "max_concurrent": dg.Field(
            int,
            default_value=0,
            description="With processes: at most this many steps at once (0: one per CPU).",
        ),
    },
)
def step_executor(config: dict[str, Any]) -> dict[str, Any]:
    if config["processes"]:
        return {
            "multiprocess": {"start_method": FORKSERVER, "max_concurrent": config["max_concurrent"]}
        }
    return {"in_process": {}}
