"""Time for the demo: local weeks and hours to UTC instants, and back to ISO-8601 text."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pandas as pd

SECOND = np.timedelta64(1, "s")
DAY = 86_400
NAT = np.datetime64("NaT", "s")


def zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def local_midnight_utc(day: dt.date, tz: str) -> np.datetime64:
    instant = dt.datetime.combine(day, dt.time(0), tzinfo=zone(tz)).astimezone(dt.UTC)
    return np.datetime64(instant.replace(tzinfo=None), "s")


def local_to_utc(local: np.ndarray, tz: str) -> np.ndarray:
    """Naive local wall times -> UTC instants (DST gaps shift forward, folds take DST)."""
    if len(local) == 0:
        return local.astype("datetime64[s]")
    idx = pd.DatetimeIndex(local).tz_localize(
        tz, ambiguous=np.ones(len(local), dtype=bool), nonexistent="shift_forward"
    )
    return idx.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[s]")


def _offset_label(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def iso_local(utc: np.ndarray, tz: str) -> np.ndarray:
    """UTC instants -> ISO-8601 local text with offset (object array; None for NaT)."""
    out = np.full(len(utc), None, dtype=object)
    ok = ~np.isnat(utc)
    if not ok.any():
        return out
    instants = utc[ok].astype("datetime64[s]")
    idx = pd.DatetimeIndex(instants).tz_localize("UTC").tz_convert(tz)
    local = idx.tz_localize(None).to_numpy().astype("datetime64[s]")
    offsets = (local - instants).astype(np.int64)
    unique, inverse = np.unique(offsets, return_inverse=True)
    labels = np.array([_offset_label(int(s)) for s in unique])
    out[ok] = np.char.add(np.datetime_as_string(local, unit="s"), labels[inverse])
    return out
