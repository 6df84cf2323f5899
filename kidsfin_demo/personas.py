"""How each persona (saver, spender, balanced, irregular) earns, spends, saves and logs in.

Arrays are indexed by persona (vocabulary.SAVER, SPENDER, BALANCED, IRREGULAR).
"""

from __future__ import annotations

import numpy as np

# Per persona (saver, spender, balanced, irregular).
SPEND_FACTOR = np.array([0.65, 1.35, 1.0, 0.8])  # purchases a week, relative
SAVE_RATE = np.array([1.5, 0.3, 0.9, 0.5])  # saving transactions a week
SAVE_SHARE = np.array([0.45, 0.08, 0.2, 0.15])  # of the week's income
# Of the kid's usual weekly income, in an ordinary week: with SAVE_SHARE, about all of it.
SPEND_SHARE = np.array([0.55, 1.0, 0.85, 0.95])
CHORE_RATE = np.array([0.6, 0.2, 0.4, 0.3])  # paid chores a week
WITHDRAW_P = np.array([0.04, 0.12, 0.08, 0.08])  # savings taken out for a bigger purchase
# Which spending slot (0-7) such a bigger purchase falls in.
BIG_PURCHASE_SLOT_P = np.array([0.05, 0.35, 0.15, 0.2, 0.0, 0.0, 0.25])
LOGIN_RATE = np.array([3.0, 2.0, 2.5, 1.0])
LESSON_RATE = np.array([1.2, 0.4, 0.9, 0.3])
QUIZ_RATE = np.array([0.8, 0.3, 0.6, 0.2])
GOAL_P = np.array([0.3, 0.1, 0.2, 0.1])  # a new goal in a week without an open one
FIRST_GOAL_P = 0.6  # a goal set in the kid's first week
BUY_GOAL_P = 0.8  # a reached goal is bought the week after
GOAL_WEEKS = (1.5, 16.0)  # weeks of usual saving a new goal asks for (log-uniform)
QUIET_WEEK_P = 0.4  # an irregular kid's week with only the allowance and a login
GIFT_P = 0.12
GIFT_AMOUNTS = np.array([20_000, 50_000, 100_000, 200_000, 500_000])
GIFT_AMOUNT_P = np.array([0.3, 0.3, 0.25, 0.1, 0.05])
CHORE_AMOUNTS = np.array([5_000, 10_000, 15_000, 20_000, 30_000])
# Spending habits wander and come back (mean-reverting), they never compound: the log of a
# kid's weekly spending level is a slow seasonal swing plus AR(1) noise.
HABIT_RHO, HABIT_SIGMA = 0.6, 0.2
# Cash piling up in the wallet burns a hole in the pocket: a share of what exceeds some
# weeks' allowance is spent on top of the habit, so wallets do not grow without end.
WALLET_SPEND_SHARE, WALLET_CUSHION_WEEKS = 0.3, 1.0
# Valid rows a kid-week other than purchases, and purchases per unit of `base` (measured
# over 104 weeks at 20,000 kids; they set the volume `txns_per_kid_week` asks for).
OTHER_ROWS, PURCHASES_PER_BASE = 2.25, 0.78

# Kids are awake and out of school at these local hours (weights per hour 0-23).
_HOUR_W = np.array([0, 0, 0, 0, 0, 0, 1, 3, 2, 2, 2, 4, 4, 2, 2, 3, 5, 6, 5, 5, 5, 3, 1, 0.0])
HOUR_P = _HOUR_W / _HOUR_W.sum()
