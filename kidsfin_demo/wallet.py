"""The wallet simulation: whole-VND money and a week's rows applied in order, vectorised.

Each kid's rows are one run of a sorted array; running sums restart per kid, and a
purchase or saving never takes more than the wallet holds (`wallet_pass`).
"""

from __future__ import annotations

import numpy as np


def round_vnd(values: np.ndarray, step: int = 1000) -> np.ndarray:
    """Whole VND, rounded to `step`, at least one step."""
    return np.maximum(step, np.round(values / step) * step)


# Each kid's running sums are shifted this far below the previous kid's (VND; far above any
# wallet), so that one running minimum over a chunk never reaches into another kid's rows.
_GROUP_SHIFT = 1 << 40


def run_starts(group: np.ndarray) -> np.ndarray:
    """Index of the first row of each run of equal values in `group`."""
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, group[1:] != group[:-1]])


def running_sum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each index of `starts` (the first must be 0)."""
    total = np.cumsum(values)
    before = total[starts] - values[starts]
    return total - np.repeat(before, np.diff(np.r_[starts, len(values)]))


def stable_order(*keys: np.ndarray) -> np.ndarray:
    """Indices that sort stably by `keys`, the last the most significant. Each key is a
    non-negative integer below 2**32, sorted in 16-bit digits: numpy sorts uint16 stably
    with a radix sort, in linear time (several times faster than sorting int64)."""
    order = np.arange(len(keys[0]))
    for key in keys:
        if len(key) and (key.min() < 0 or key.max() >= 1 << 32):
            raise ValueError("sort keys must be in [0, 2**32)")
        for shift in (0, 16) if len(key) and key.max() >= 1 << 16 else (0,):
            digit = ((key[order] >> shift) & 0xFFFF).astype(np.uint16)
            order = order[np.argsort(digit, kind="stable")]
    return order


def wallet_pass(
    group: np.ndarray, delta: np.ndarray, opening: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Apply a week's rows to the wallets in order; an outflow never takes more than is there.

    `group` numbers each row's kid (0, 1, ..., rows sorted by kid, then time), `delta` is the
    money each row means to move in (+) or out (-), `opening` the wallets before the week.
    The wallet after row i is W_i = max(0, W_{i-1} + d_i): a purchase or saving larger than
    the wallet takes what is left, or nothing. In closed form (Lindley's recursion),
    W_i = S_i - min(0, min_{k<=i} S_k) with S the running sum from the opening wallet: no
    Python loop over rows. Returns the money each row moved (|delta| or less) and W.
    """
    if len(delta) == 0:
        return delta.copy(), delta.copy()
    starts = run_starts(group)
    running = opening[group] + running_sum(delta, starts)
    if np.abs(running).max() >= _GROUP_SHIFT // 2:
        raise ValueError("wallet sums beyond the generator's range")
    shift = group.astype(np.int64) * _GROUP_SHIFT
    lowest = np.minimum(np.minimum.accumulate(running - shift) + shift, opening[group])
    wallet = running - np.minimum(lowest, 0)
    before = np.empty_like(wallet)
    before[1:] = wallet[:-1]
    before[starts] = opening[group[starts]]
    return np.abs(wallet - before), wallet


def floor_vnd(values: np.ndarray, step: int = 1000) -> np.ndarray:
    return (np.floor(values / step) * step).astype(np.int64)
