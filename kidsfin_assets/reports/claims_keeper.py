"""A run's claims on its week's kids: claimed a page at a time before anything is paid
for, kept alive by a heartbeat, proved before each request, given back at the end.

The table and its statements are `ledger.Claims`; this is how a run uses them: every call
through the warehouse gate (an outage is waited out, a deadlock run again), and the log
told when another run holds kids this run then waits for."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import dagster as dg
from sqlalchemy.engine import Connection

from kidsfin_assets.reports.ledger import ClaimResult, Claims
from kidsfin_assets.reports.planning import PendingReport, wanted
from kidsfin_assets.warehouse.outage import WarehouseGate

# A renewal at least this often (a quarter of the lease when that is shorter).
RENEW_SECONDS = 10.0


class ClaimsKeeper:
    """One run's claims on one week (`Claims`), used through the warehouse gate."""

    def __init__(self, claims: Claims, gate: WarehouseGate, log: dg.DagsterLogManager) -> None:
        self.claims, self.gate, self.log = claims, gate, log

    @property
    def owner(self) -> str:
        """host:pid:token: names this run's claims (and its spool file)."""
        return self.claims.owner

    @property
    def renew_interval(self) -> float:
        return min(RENEW_SECONDS, self.claims.lease / 4)

    def claim(self, items: Mapping[int, PendingReport], *, say: bool = True) -> ClaimResult:
        """Take the kids of `items` nobody else holds; `say`: log those another run holds
        (the first time they are met; a run waiting for them claims them again quietly)."""
        asked = wanted(items.values())
        claimed = self.gate.call(lambda: self.claims.claim(asked))
        if say and claimed.elsewhere:
            runs = sorted(set(claimed.elsewhere.values()))
            self.log.info(
                f"{len(claimed.elsewhere)} kids are being asked for by another run "
                f"({', '.join(r[:8] for r in runs)}): this run waits for their answers "
                "instead of paying for them again"
            )
        return claimed

    def holds(self, kid: int) -> bool:
        """Whether the claim on `kid` surely lasts through a request, without asking the
        warehouse (`still_holds` asks when this says no)."""
        return self.claims.holds(kid, self.renew_interval)

    def still_holds(self, kid: int) -> bool:
        """Whether this run's claim on `kid` surely lasts through a request; if the lease
        looks stale, renewed first (a lease that ran out is not revived: it stays lost)."""
        if self.holds(kid):
            return True
        self.gate.call(self.claims.renew)
        return self.holds(kid)

    def reported(self, items: Mapping[int, PendingReport]) -> set[int]:
        """Kids of `items` whose report for that input is stored, by any run."""
        return self.claims.reported(wanted(items.values()))

    def release_in(self, conn: Connection, kids: list[int]) -> None:
        """Drop the claims of kids whose reports `conn`'s transaction stores."""
        self.claims.delete_in(conn, kids)

    def start_heartbeat(self, until: threading.Event) -> threading.Thread:
        """Renews every lease this run holds, every `renew_interval`, until `until` is set."""
        beat = threading.Thread(target=self._beat, args=(until,), daemon=True, name="claims")
        beat.start()
        return beat

    def _beat(self, until: threading.Event) -> None:
        while not until.wait(self.renew_interval):
            try:
                self.claims.renew()
            except Exception:  # an outage: the gate handles it; the lease has slack
                continue

    def finish(self) -> None:
        """Give back every claim not turned into a report (failed, cancelled)."""
        try:
            self.claims.release_all()
        except Exception as exc:  # they expire with their lease
            self.log.warning(f"claims not released ({exc}); they expire with their lease")
