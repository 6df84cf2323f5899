"""kidsfin: weekly AI reports on children's money habits, as a Dagster code location."""

import warnings

import dagster as dg

# Known and accepted wherever the definitions are imported: backfill policies and
# partitioned checks are beta / preview APIs used on purpose, and the weekly job mixing
# backfill policies is by design (silver may run a range, gold one week per run).
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", message=".*materializes assets with varying BackfillPolicies")
