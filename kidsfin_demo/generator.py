"""The demo's generator: kids with personas, wallets and savings goals, week by week.

Rows are generated with numpy week by week and kid-chunk by kid-chunk (KID_CHUNK), so
memory stays flat at any scale; `DemoGenerator(spec).tables()` yields them without a
database (kidsfin_demo.loading writes them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from kidsfin_demo.dirty import DirtyRows
from kidsfin_demo.personas import (
    BIG_PURCHASE_SLOT_P,
    BUY_GOAL_P,
    CHORE_AMOUNTS,
    CHORE_RATE,
    FIRST_GOAL_P,
    GIFT_AMOUNT_P,
    GIFT_AMOUNTS,
    GIFT_P,
    GOAL_P,
    GOAL_WEEKS,
    HABIT_RHO,
    HABIT_SIGMA,
    HOUR_P,
    LESSON_RATE,
    LOGIN_RATE,
    OTHER_ROWS,
    PURCHASES_PER_BASE,
    QUIET_WEEK_P,
    QUIZ_RATE,
    SAVE_RATE,
    SAVE_SHARE,
    SPEND_FACTOR,
    SPEND_SHARE,
    WALLET_CUSHION_WEEKS,
    WALLET_SPEND_SHARE,
    WITHDRAW_P,
)
from kidsfin_demo.spec import DemoSpec, DemoSummary, Rows
from kidsfin_demo.times import DAY, NAT, SECOND, local_midnight_utc, local_to_utc
from kidsfin_demo.vocabulary import (
    FIXED_NOTES,
    FLAT_NOTES,
    GOAL_COMPLETED,
    GOAL_CREATED,
    GOAL_LOG_PRICE,
    GOAL_SLOT,
    GOAL_TITLES,
    GOALS,
    IRREGULAR,
    KIND_WALLET_SIGN,
    LESSON,
    LOGIN,
    NICKNAMES,
    NOTE_LEN,
    NOTE_OFFSET,
    QUIZ,
    RELATIVE_PRICE,
    SAVING,
    SLOT_ALLOWANCE,
    SLOT_CATEGORY,
    SLOT_CHORE,
    SLOT_GIFT,
    SLOT_KIND,
    SLOT_SAVING,
    SLOT_WITHDRAWAL,
    SPENDING_SLOT_P,
    TRICKY,
    WITHDRAWAL,
)
from kidsfin_demo.wallet import (
    floor_vnd,
    round_vnd,
    run_starts,
    running_sum,
    stable_order,
    wallet_pass,
)

KID_CHUNK = 20_000  # kids generated (and loaded) together; fixed, so output is seed-stable


class DemoGenerator:
    """Per-kid profiles and money, running ids and counters; rows come chunk by chunk.

    Each kid has a wallet (cash) and savings, both starting at nothing, simulated week by
    week in time order: the allowance (weekly), money given and chores come in; purchases
    and savings go out of the wallet and never take more than it holds (`wallet_pass`);
    withdrawals move savings back and never take more than was saved at the week's start.
    Savings goals open with a target above the savings, complete at the first saving that
    brings the savings to the target, and are often bought the week after (a withdrawal,
    then the purchase). Spending follows a mean-reverting habit, so it stays bounded over
    years. `tables()` yields every row without touching a database.
    """

    def __init__(self, spec: DemoSpec, sqlite: bool = False) -> None:
        self.spec, self.tz = spec, spec.timezone
        self.mondays = spec.week_starts()
        # Week bounds as UTC instants, localised per Monday (a DST change moves them).
        bounds = [*self.mondays, self.mondays[-1] + dt.timedelta(days=7)]
        self.bounds_utc = np.array([local_midnight_utc(d, self.tz) for d in bounds])
        self.dirty = DirtyRows(self.tz, sqlite)
        self.n_txns = self.n_events = self.n_goals = self.n_goals_completed = 0
        self.next_txn_id = self.next_event_id = self.next_goal_id = 1
        # Purchases a kid-week per unit of SPEND_FACTOR, so that valid rows average about
        # txns_per_kid_week.
        self.base = max((spec.txns_per_kid_week - OTHER_ROWS) / PURCHASES_PER_BASE, 0.3)

        n = spec.kids
        rng = np.random.default_rng([spec.seed, 0])
        # Personas dealt round-robin then shuffled, so even 10 kids get all four.
        self.persona = rng.permutation(np.resize(np.arange(4), n)).astype(np.int8)
        self.allowance = rng.integers(5, 21, n).astype(np.int64) * 10_000  # 50k-200k
        # Most parents give the allowance on Monday, some a day or two later.
        self.allowance_day = rng.choice(3, size=n, p=[0.7, 0.15, 0.15])
        self.allowance_hour = rng.integers(6, 21, n)
        self.start_week = np.zeros(n, dtype=np.int64)
        if n >= 10 and spec.weeks >= 2:
            # One late starter: no history, so its first weeks show the `new` trend.
            self.start_week[rng.integers(0, n)] = min(2, spec.weeks - 1)
        self.name_order = rng.permutation(len(NICKNAMES))
        # The spending habit: a seasonal swing (amplitude, period in weeks, phase) on the
        # log scale, plus AR(1) noise carried from week to week.
        self.habit_amp = rng.uniform(0.1, 0.4, n)
        self.habit_period = rng.uniform(6.0, 30.0, n)
        self.habit_phase = rng.uniform(0.0, 2 * np.pi, n)
        self.habit_noise = np.zeros(n)
        self.chore_rate = CHORE_RATE[self.persona] * rng.uniform(0.0, 2.0, n)
        # What usually comes in a week: what the spending habit is sized from.
        self.usual_income = (
            self.allowance
            + GIFT_P * float(GIFT_AMOUNTS @ GIFT_AMOUNT_P)
            + self.chore_rate * float(CHORE_AMOUNTS.mean())
        )
        # Money held (whole VND).
        self.wallet = np.zeros(n, dtype=np.int64)
        self.saved = np.zeros(n, dtype=np.int64)
        # The open goal per kid (id 0: none), and a goal reached, to buy next week (-1: none).
        self.goal_id = np.zeros(n, dtype=np.int64)
        self.goal_title = np.zeros(n, dtype=np.int64)
        self.goal_target = np.zeros(n, dtype=np.int64)
        self.goal_created = np.full(n, NAT)
        self.goal_to_buy = np.full(n, -1, dtype=np.int64)
        self.goal_price = np.zeros(n, dtype=np.int64)

    def tables(self) -> Iterator[tuple[str, Rows]]:
        """Every row, as (table, chunk): the kids, then week by week, then the open goals."""
        kids = self.spec.kids
        chunks = [(lo, min(lo + KID_CHUNK, kids)) for lo in range(0, kids, KID_CHUNK)]
        for lo, hi in chunks:
            yield "kids", self.kids_chunk(lo, hi)
        for w in range(self.spec.weeks):
            for lo, hi in chunks:
                txns, events, goals = self.week_chunk(w, lo, hi)
                yield "transactions", txns
                yield "app_events", events
                yield "savings_goals", goals  # the goals completed in the week
        for lo, hi in chunks:
            yield "savings_goals", self.open_goals_chunk(lo, hi)

    def summary(self, elapsed_seconds: float) -> DemoSummary:
        return DemoSummary(
            kids=self.spec.kids,
            weeks=self.mondays,
            transactions=self.n_txns,
            app_events=self.n_events,
            savings_goals=self.n_goals,
            invalid_by_reason={k: v for k, v in self.dirty.invalid.items() if v},
            elapsed_seconds=elapsed_seconds,
            late_starters=[int(i) + 1 for i in np.flatnonzero(self.start_week > 0)],
            savings_goals_completed=self.n_goals_completed,
        )

    # -- kids ----------------------------------------------------------------------------

    def kids_chunk(self, lo: int, hi: int) -> Rows:
        rng = np.random.default_rng([self.spec.seed, 3, lo])
        idx = np.arange(lo, hi)
        names = np.array(NICKNAMES, dtype=object)[self.name_order[idx % len(NICKNAMES)]]
        if self.spec.kids > len(NICKNAMES):
            # "Bông", "Bông 2", ...: still short, still unique.
            lap = idx // len(NICKNAMES)
            suffix = np.where(lap > 0, np.char.add(" ", (lap + 1).astype(str)), "")
            names = np.char.add(names.astype(str), suffix).astype(object)
        first = np.datetime64(self.mondays[0], "D")
        birth = first - rng.integers(6 * 365, 15 * 365, len(idx)).astype("timedelta64[D]")
        birth_text = np.datetime_as_string(birth, unit="D").astype(object)
        birth_text[rng.random(len(idx)) < 0.03] = None  # parents skipped the field
        # Signed up 1-180 days before the first week; a late starter on the Sunday
        # evening before its first week (so it has no activity before that).
        created = self.bounds_utc[0] - rng.integers(DAY, 180 * DAY, len(idx)) * SECOND
        late = self.start_week[idx] > 0
        created[late] = self.bounds_utc[self.start_week[idx][late]] - (
            rng.integers(2 * 3600, 6 * 3600, int(late.sum())) * SECOND
        )
        return Rows(
            {
                "kid_id": idx + 1,
                "nickname": names,
                "birth_date": birth_text,
                "created_at": created,
            }
        )

    # -- one week of one chunk of kids -----------------------------------------------------

    def _random_local(self, rng: np.random.Generator, w: int, n: int) -> np.ndarray:
        days = rng.integers(0, 7, n)
        hours = rng.choice(24, size=n, p=HOUR_P)
        return self._local(w, days, hours, rng.integers(0, 3600, n))

    def _local(self, w: int, days: np.ndarray, hours: np.ndarray, secs: np.ndarray) -> np.ndarray:
        monday = np.datetime64(self.mondays[w], "s")
        return monday + (days * DAY + hours * 3600 + secs) * SECOND

    def _notes(self, rng: np.random.Generator, slots: np.ndarray) -> np.ndarray:
        n = len(slots)
        pick = NOTE_OFFSET[slots] + (rng.random(n) * NOTE_LEN[slots]).astype(np.int64)
        tricky = TRICKY[rng.integers(0, len(TRICKY), n)]
        u = rng.random(n)
        # Most children type nothing; a few type something the pipeline must not obey.
        return np.where(
            u < 0.35, None, np.where(u < 0.47, "", np.where(u < 0.96, FLAT_NOTES[pick], tricky))
        )

    def _habit(self, rng: np.random.Generator, w: int, kids: np.ndarray) -> np.ndarray:
        """This week's spending level per kid, around 1: it wanders and comes back."""
        noise = HABIT_RHO * self.habit_noise[kids] + HABIT_SIGMA * rng.standard_normal(len(kids))
        self.habit_noise[kids] = noise
        swing = self.habit_amp[kids] * np.sin(
            2 * np.pi * w / self.habit_period[kids] + self.habit_phase[kids]
        )
        return np.exp(swing + noise)

    def week_chunk(self, w: int, lo: int, hi: int) -> tuple[Rows, Rows, Rows]:
        """One week of kids lo..hi-1: (transactions, app events, goals completed)."""
        spec = self.spec
        rng = np.random.default_rng([spec.seed, 1, w, lo])
        kids = np.arange(lo, hi)
        kids = kids[self.start_week[kids] <= w]
        persona = self.persona[kids]
        rel = w - self.start_week[kids]  # weeks since the kid's first week
        quiet = (persona == IRREGULAR) & (rel > 0) & (rng.random(len(kids)) < QUIET_WEEK_P)
        kw = _KidWeek(w, kids, persona, rel, ~quiet, self.saved[kids])

        income, income_rows = self._income(rng, kw)
        withdrawal_rows, buying = self._withdrawals(rng, kw)
        planned = _Segment.join(
            [
                *income_rows,
                *withdrawal_rows,
                self._purchases(rng, kw),
                self._savings(rng, kw, income),
            ]
        )
        paid = self._pay(kw, planned)
        created = self._goals(rng, kw, kw.busy & ~buying)
        completed = self._completed_goals(rng, kw, paid)

        # Rows the wallet paid for (a purchase or saving it could not pay at all is
        # dropped), back in time order (same-second rows of a kid keep the wallet's order).
        keep = np.flatnonzero(paid.moved > 0)
        keep = keep[stable_order(paid.second[keep])]
        notes = self._notes(rng, paid.slot[keep])
        fixed = paid.note[keep]
        notes[fixed >= 0] = FIXED_NOTES[fixed[fixed >= 0]]
        txns = {
            "kid_id": kids[paid.pos[keep]] + 1,  # ids are 1-based; arrays are indexed from 0
            "occurred_at": paid.utc[keep],
            "kind": paid.kind[keep],
            "category": SLOT_CATEGORY[paid.slot[keep]],
            "amount": paid.moved[keep].astype(np.float64),
            "note": notes,
        }
        events = self._events(rng, kw, created, completed)

        if spec.dirty and len(kids):
            drng = np.random.default_rng([spec.seed, 2, w, lo])  # apart: clean rows unchanged

            def in_week(r: np.random.Generator, n: int) -> np.ndarray:
                return self._random_local(r, w, n)

            txns = self.dirty.transactions(drng, in_week, kids, txns)
            events = self.dirty.events(drng, in_week, kids, events)

        txn_rows = self._finish(txns, "txn_id", "next_txn_id")
        event_rows = self._finish(events, "event_id", "next_event_id")
        self.n_txns += len(txn_rows)
        self.n_events += len(event_rows)
        return txn_rows, event_rows, completed

    def _income(self, rng: np.random.Generator, kw: _KidWeek) -> tuple[np.ndarray, list[_Segment]]:
        """The allowance every week (a new kid's first one on its first Monday morning, so
        that its first purchases have money behind them), money given now and then, chores.
        Returns the week's income per kid and the rows."""
        n, w = len(kw.kids), kw.w
        allowance = self.allowance[kw.kids]
        first_week = kw.rel == 0
        allowance_at = self._local(
            w,
            np.where(first_week, 0, self.allowance_day[kw.kids]),
            np.where(first_week, 6, self.allowance_hour[kw.kids]),
            rng.integers(0, 600, n),
        )
        gift = np.flatnonzero(rng.random(n) < GIFT_P)
        gift_amount = rng.choice(GIFT_AMOUNTS, size=len(gift), p=GIFT_AMOUNT_P)
        chore = np.repeat(np.arange(n), rng.poisson(self.chore_rate[kw.kids]) * kw.busy)
        chore_amount = rng.choice(CHORE_AMOUNTS, size=len(chore))
        income = (
            allowance
            + np.bincount(gift, gift_amount, minlength=n).astype(np.int64)
            + np.bincount(chore, chore_amount, minlength=n).astype(np.int64)
        )
        return income, [
            _Segment(np.arange(n), SLOT_ALLOWANCE, allowance, allowance_at),
            _Segment(gift, SLOT_GIFT, gift_amount, self._random_local(rng, w, len(gift))),
            _Segment(chore, SLOT_CHORE, chore_amount, self._random_local(rng, w, len(chore))),
        ]

    def _withdrawals(
        self, rng: np.random.Generator, kw: _KidWeek
    ) -> tuple[list[_Segment], np.ndarray]:
        """Withdrawals, sized from what was saved before the week (so savings never go below
        zero), each followed within hours by what the money was for: a goal reached last
        week (noted with its title), or now and then something pocket money does not buy.
        Returns the rows and which kids are buying their goal."""
        n = len(kw.kids)
        to_buy = self.goal_to_buy[kw.kids]
        self.goal_to_buy[kw.kids] = -1
        goal_amount = np.minimum(self.goal_price[kw.kids], kw.saved)
        buy = (to_buy >= 0) & (goal_amount > 0)
        other = (rng.random(n) < WITHDRAW_P[kw.persona]) & kw.busy & ~buy & (kw.saved >= 10_000)
        wd = np.flatnonzero(buy | other)
        buys = buy[wd]
        amount = np.where(
            buys, goal_amount[wd], floor_vnd(kw.saved[wd] * rng.uniform(0.2, 0.8, len(wd)))
        )
        at = self._local(
            kw.w,
            rng.integers(0, 6, len(wd)),
            rng.integers(8, 20, len(wd)),
            rng.integers(0, 3600, len(wd)),
        )
        big_slot = rng.choice(len(BIG_PURCHASE_SLOT_P), size=len(wd), p=BIG_PURCHASE_SLOT_P)
        bought = _Segment(
            wd,
            np.where(buys, GOAL_SLOT[to_buy[wd]], big_slot),
            amount,
            at + rng.integers(1800, 3 * 3600, len(wd)) * SECOND,
            note=np.where(buys, to_buy[wd], -1),  # the goal's title
        )
        return [_Segment(wd, SLOT_WITHDRAWAL, amount, at), bought], buy

    def _purchases(self, rng: np.random.Generator, kw: _KidWeek) -> _Segment:
        """As many purchases as the habit's level says; a kid with cash piling up in the
        wallet buys dearer things (a share of the surplus on top of the week's budget)."""
        allowance, factor = self.allowance[kw.kids], SPEND_FACTOR[kw.persona]
        budget = self.usual_income[kw.kids] * SPEND_SHARE[kw.persona]
        habit = self._habit(rng, kw.w, kw.kids)
        surplus = np.maximum(0, self.wallet[kw.kids] - WALLET_CUSHION_WEEKS * allowance)
        dearer = 1.0 + WALLET_SPEND_SHARE * surplus / (budget * habit)
        spend = np.repeat(
            np.arange(len(kw.kids)), rng.poisson(self.base * factor * habit) * kw.busy
        )
        slot = rng.choice(8, size=len(spend), p=SPENDING_SLOT_P)
        # A budget spread over the expected purchases, weighted by what the category costs.
        per_purchase = budget * dearer / (self.base * factor)
        amount = round_vnd(
            per_purchase[spend] * RELATIVE_PRICE[slot] * rng.lognormal(-0.1, 0.45, len(spend))
        )
        return _Segment(spend, slot, amount, self._random_local(rng, kw.w, len(spend)))

    def _savings(self, rng: np.random.Generator, kw: _KidWeek, income: np.ndarray) -> _Segment:
        """Savings: a share of the week's income, never more than all of it."""
        n = len(kw.kids)
        save = np.repeat(np.arange(n), rng.poisson(SAVE_RATE[kw.persona]) * kw.busy)
        persona = kw.persona[save]
        planned = round_vnd(
            income[save]
            * SAVE_SHARE[persona]
            / np.maximum(SAVE_RATE[persona], 1.0)
            * rng.lognormal(0.0, 0.3, len(save))
        )
        over = income / np.maximum(np.bincount(save, planned, minlength=n), 1.0)
        amount = floor_vnd(planned * np.minimum(over, 1.0)[save])
        return _Segment(save, SLOT_SAVING, amount, self._random_local(rng, kw.w, len(save)))

    def _pay(self, kw: _KidWeek, planned: _Segment) -> _Paid:
        """The week in time order, kid by kid: the wallet decides what really moves. Updates
        each kid's wallet and savings."""
        utc = local_to_utc(planned.local, self.tz)
        second = (utc - self.bounds_utc[kw.w]).astype(np.int64)  # of the week
        order = stable_order(second, planned.pos)
        pos, slot = planned.pos[order], planned.slot[order]
        kind = SLOT_KIND[slot]
        moved, wallet = wallet_pass(
            pos, KIND_WALLET_SIGN[kind] * planned.amount[order], self.wallet[kw.kids]
        )
        starts = run_starts(pos)
        saving = np.where(kind == SAVING, moved, np.where(kind == WITHDRAWAL, -moved, 0))
        savings = kw.saved[pos] + running_sum(saving, starts)
        last = np.r_[starts[1:], len(pos)][: len(starts)] - 1
        self.wallet[kw.kids[pos[last]]] = wallet[last]
        self.saved[kw.kids[pos[last]]] = savings[last]
        return _Paid(
            pos, slot, kind, utc[order], second[order], moved, planned.note[order], savings
        )

    def _events(
        self, rng: np.random.Generator, kw: _KidWeek, created: Rows, completed: Rows
    ) -> dict[str, np.ndarray]:
        """At least one login a week; lessons and quizzes by persona; goals set and reached."""
        counts = [
            (LOGIN, 1 + rng.poisson(LOGIN_RATE[kw.persona]) * kw.busy),
            (LESSON, rng.poisson(LESSON_RATE[kw.persona]) * kw.busy),
            (QUIZ, rng.poisson(QUIZ_RATE[kw.persona]) * kw.busy),
        ]
        kid = np.concatenate([np.repeat(kw.kids + 1, c) for _, c in counts])
        kind = np.concatenate([np.full(int(c.sum()), t) for t, c in counts])
        at = local_to_utc(self._random_local(rng, kw.w, len(kid)), self.tz)
        goals = [(created, "created_at", GOAL_CREATED), (completed, "completed_at", GOAL_COMPLETED)]
        return {
            "kid_id": np.concatenate([kid, *(g.columns["kid_id"] for g, _, _ in goals)]),
            "occurred_at": np.concatenate([at, *(g.columns[c] for g, c, _ in goals)]),
            "event_type": np.concatenate([kind, *(np.full(len(g), t) for g, _, t in goals)]),
        }

    def _goals(self, rng: np.random.Generator, kw: _KidWeek, eligible: np.ndarray) -> Rows:
        """Open new goals (most kids in their first week, a few later, one at a time): a
        target some weeks of saving above the savings, titled by what it could buy.
        Returns the goals opened (kid_id and created_at)."""
        n = len(kw.kids)
        p = np.where(kw.rel == 0, FIRST_GOAL_P, GOAL_P[kw.persona])
        new = np.flatnonzero(eligible & (self.goal_id[kw.kids] == 0) & (rng.random(n) < p))
        k, saved = len(new), kw.saved[new]
        weekly = self.allowance[kw.kids[new]] * SAVE_SHARE[kw.persona[new]]
        weeks = np.exp(rng.uniform(np.log(GOAL_WEEKS[0]), np.log(GOAL_WEEKS[1]), k))
        target = (np.ceil((saved + weekly * weeks) / 10_000) * 10_000).astype(np.int64)
        # The title whose price is nearest what is still to save, give or take (Gumbel noise).
        gap = np.abs(np.log(np.maximum(target - saved, 10_000))[:, None] - GOAL_LOG_PRICE)
        title = np.argmax(-4.0 * gap + rng.gumbel(size=(k, len(GOALS))), axis=1)
        created = local_to_utc(self._random_local(rng, kw.w, k), self.tz)
        g = kw.kids[new]
        self.goal_id[g] = np.arange(self.next_goal_id, self.next_goal_id + k)
        self.next_goal_id += k
        self.goal_title[g], self.goal_target[g], self.goal_created[g] = title, target, created
        return Rows({"kid_id": g + 1, "created_at": created})

    def _completed_goals(self, rng: np.random.Generator, kw: _KidWeek, paid: _Paid) -> Rows:
        """Goals whose target the savings reached this week: completed at the first saving
        after the goal was set that brought the savings to the target. Their rows; most are
        bought the week after (see _withdrawals)."""
        kid = kw.kids[paid.pos]
        reached = (
            (paid.kind == SAVING)
            & (paid.moved > 0)
            & (self.goal_id[kid] > 0)
            & (paid.utc > self.goal_created[kid])
            & (paid.savings >= self.goal_target[kid])
        )
        first = np.flatnonzero(reached)
        first = first[run_starts(paid.pos[first])]
        g = kid[first]
        rows = self._goal_rows(g, paid.utc[first])
        title = self.goal_title[g]
        buys = (GOAL_SLOT[title] >= 0) & (rng.random(len(g)) < BUY_GOAL_P)
        self.goal_to_buy[g] = np.where(buys, title, -1)
        self.goal_price[g] = self.goal_target[g]
        self.goal_id[g] = 0
        self.n_goals_completed += len(g)
        return rows

    def open_goals_chunk(self, lo: int, hi: int) -> Rows:
        """The goals still open at the end, kids lo..hi-1."""
        g = lo + np.flatnonzero(self.goal_id[lo:hi] > 0)
        return self._goal_rows(g, np.full(len(g), NAT))

    def _goal_rows(self, g: np.ndarray, completed_at: np.ndarray) -> Rows:
        order = np.argsort(self.goal_id[g], kind="stable")
        g = g[order]
        self.n_goals += len(g)
        return Rows(
            {
                "goal_id": self.goal_id[g],
                "kid_id": g + 1,
                "title": GOAL_TITLES[self.goal_title[g]],
                "target_amount": self.goal_target[g].astype(np.float64),
                "created_at": self.goal_created[g],
                "completed_at": completed_at[order],
            }
        )

    def _finish(self, cols: dict[str, np.ndarray], id_name: str, counter: str) -> Rows:
        """Order by time (missing times last) and number the rows, as the app would."""
        times = cols["occurred_at"]
        seconds = times.astype(np.int64)
        known = ~np.isnat(times)
        start = seconds[known].min() if known.any() else 0
        # Seconds since the earliest row (a week's span), missing times after every other.
        key = np.where(known, seconds - start, 0)
        key[~known] = key.max(initial=0) + 1
        order = stable_order(key)
        first = getattr(self, counter)
        ids = np.arange(first, first + len(order), dtype=np.int64)
        setattr(self, counter, first + len(order))
        return Rows({id_name: ids, **{k: v[order] for k, v in cols.items()}})


@dataclass
class _KidWeek:
    """The kids of a chunk active in week w, and what the week starts from."""

    w: int
    kids: np.ndarray  # 0-based kid indexes
    persona: np.ndarray
    rel: np.ndarray  # weeks since the kid's first week
    busy: np.ndarray  # not an irregular kid's quiet week
    saved: np.ndarray  # savings at the start of the week


@dataclass
class _Paid:
    """A week's rows in time order, kid by kid, after the wallet: `moved` is what each row
    really moved (0: nothing), `savings` the kid's savings after it."""

    pos: np.ndarray  # index into _KidWeek.kids
    slot: np.ndarray
    kind: np.ndarray
    utc: np.ndarray
    second: np.ndarray  # of the week
    moved: np.ndarray
    note: np.ndarray  # index into FIXED_NOTES, or -1
    savings: np.ndarray


@dataclass
class _Segment:
    """Planned rows of one kind of activity: kid index, slot, amount (VND), local time."""

    pos: np.ndarray
    slot: np.ndarray | int
    amount: np.ndarray
    local: np.ndarray
    note: np.ndarray | int = -1  # an index into FIXED_NOTES, or -1 for a random note

    @staticmethod
    def join(segments: list[_Segment]) -> _Segment:
        def column(values: np.ndarray | int, n: int) -> np.ndarray:
            return np.broadcast_to(np.asarray(values, np.int64), (n,))

        return _Segment(
            pos=np.concatenate([s.pos for s in segments]),
            slot=np.concatenate([column(s.slot, len(s.pos)) for s in segments]),
            amount=np.concatenate([column(s.amount, len(s.pos)) for s in segments]),
            local=np.concatenate([s.local for s in segments]),
            note=np.concatenate([column(s.note, len(s.pos)) for s in segments]),
        )
