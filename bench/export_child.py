"""One export step in a fresh interpreter, measured from inside (bench/exports.py runs it).

    PYTHONPATH=<code> python bench/export_child.py <asset selection> <week>

Run as a script, not a module, so that PYTHONPATH alone says which kidsfin_assets is
measured (this checkout's, or an older one's: `bench.exports --code-dir`). The settings
come from the environment (KIDSFIN_DATABASE_URL, KIDSFIN_EXPORTS__EXPORT_DIR,
KIDSFIN_EXPORTS__FORMAT).
Prints one line, `RESULT {json}`: the step's wall and CPU time, the peak RSS (VmHWM) before and
after, and the materialisation's metadata.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from typing import Any

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def vm_hwm_kib() -> int:
    """This process's peak RSS so far (not ru_maxrss: Linux carries that across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def plain(value: Any) -> Any:
    inner = getattr(value, "value", value)
    return inner if isinstance(inner, int | float | str | bool) or inner is None else str(inner)


def main(selection: str, week: str) -> None:
    warnings.filterwarnings("ignore")
    import dagster as dg

    from kidsfin_assets.definitions import pipeline_assets, run_resources
    from kidsfin_assets.defs.resources import load_settings

    resources = run_resources(load_settings())
    baseline = vm_hwm_kib()  # imports, Dagster and the definitions: before any row
    began, cpu = time.perf_counter(), time.process_time()
    result = dg.materialize(
        pipeline_assets,
        resources=resources,
        partition_key=week,
        selection=selection,
        run_config=QUIET_RUN_CONFIG,
        raise_on_error=False,
    )
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    node = selection.replace("/", "__")
    metadata = {
        key: plain(value)
        for event in result.asset_materializations_for_node(node)
        for key, value in event.metadata.items()
    }
    out = {
        "success": result.success,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),  # of this process: the machine's load is not in it
        "baseline_rss_mib": round(baseline / 1024, 1),
        "peak_rss_mib": round(vm_hwm_kib() / 1024, 1),
        "metadata": metadata,
    }
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
