"""Demo source data: realistic pocket-money activity for the app tables of docs/metrics.md.

`generate()` fills `kids`, `transactions`, `app_events` and `savings_goals` (names from
settings) with a fresh, seeded load: Vietnamese nicknames and categories, a persona per kid
(saver, spender, balanced, irregular), and money that adds up. Each kid has a wallet and
savings: the weekly allowance, money given and chores come in; purchases and savings never
take more than the wallet holds, withdrawals never more than was saved; savings goals are
set and completed when the savings reach their target, then often bought. Spending follows
a habit that wanders and comes back, so years of weeks stay bounded. With `dirty=True`
about 2 % of the transactions and app events are deliberately invalid, one defect per row,
labelled and counted in the summary (see DIRTY_SHARE); the valid rows are the same without.

Rows are generated with numpy week by week and kid-chunk by kid-chunk, so memory stays
flat at any scale; PostgreSQL loads with COPY, SQLite with executemany.
`DemoGenerator(spec).tables()` yields the same rows without a database.

Modules: vocabulary and personas (what rows say, how each persona behaves), wallet (the
money simulation), dirty (invalid rows on purpose), generator, loading (SQLite / COPY), cli,
and run_demo (`make demo`: load, then materialise every demo week through the code location).
The Dagster code location never imports this package; `make demo` (run_demo.py) does.

    python -m kidsfin_demo --kids 100 --weeks 6
"""

from kidsfin_demo.generator import DemoGenerator
from kidsfin_demo.loading import create_source_tables, generate
from kidsfin_demo.spec import DemoSpec, DemoSummary

__all__ = ["DemoGenerator", "DemoSpec", "DemoSummary", "create_source_tables", "generate"]
