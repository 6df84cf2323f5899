"""Does a change to the grounding checker keep every result? And what does a report cost?

Records, for the checker as it is, the exact findings (kind, field, text, message, sentence)
of `check_report` on every labelled sentence (alone) and every whole report of every written
corpus, and on the generated corpus (`bench.grounding.corpus(320, 2026)`); compares a later
checker against that record, listing every difference; times the CPU a report costs.

    python -m bench.grounding_equivalence --record /tmp/fastcheck_baseline.json
    python -m bench.grounding_equivalence --compare /tmp/fastcheck_baseline.json
    python -m bench.grounding_equivalence --time
    python -m bench.grounding_equivalence --patterns

`--patterns` checks the patterns `vocabulary.led` rewrote (a lookahead of their first
characters put before them) against the patterns as written: the same matches and groups
from finditer, and from search and match over random spans, on every text of the corpora
(lower-cased) and on random strings of their words.

The time is CPU (`time.process_time`) per report over the generated corpus, the least of
three passes; each report gets a data block the checker has not seen (a new dict with a
nonce, as `bench.grounding.measure` does), so that its facts are built as in production.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from bench.corpus.written import WRITTEN, _alone, load
from bench.grounding import corpus
from kidsfin_assets.reports.grounding import (
    check_report,
    checker,
    closed,
    forms,
    reading,
    spelled,
    vocabulary,
)
from kidsfin_assets.reports.grounding.checker import report_texts

GENERATED = (320, 2026)  # weeks, seed


def _findings(report: Any, data: Any) -> list[dict[str, str]]:
    return [dataclasses.asdict(f) for f in check_report(report, data)]


def cases() -> list[tuple[str, Any, Any]]:
    """(name, report, data) of every case, in a fixed order."""
    out: list[tuple[str, Any, Any]] = []
    for name in WRITTEN:
        blocks, writers = load(name)
        for w, writer in enumerate(writers):
            for b in writer["blocks"]:
                data = blocks[b["block_id"]]
                where = f"{name}/{w}:{writer.get('style', '')}/{b['block_id']}"
                for i, s in enumerate(b["sentences"]):
                    out.append((f"{where}/sentence {i}", _alone(s["text"]), data))
                out.append((f"{where}/report", b["report"], data))
    for i, item in enumerate(corpus(*GENERATED)):
        out.append((f"generated/{i}/{item['source']}", item["report"], item["data"]))
    return out


def results() -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for name, report, data in cases():
        if name in found:
            raise SystemExit(f"two cases named {name}")
        found[name] = _findings(report, data)
    return found


def compare(path: Path) -> int:
    recorded = json.loads(path.read_text(encoding="utf-8"))
    now = results()
    differences = 0
    for name in sorted(set(recorded) | set(now)):
        if name not in now or name not in recorded:
            differences += 1
            print(f"{name}: {'only in the record' if name in recorded else 'new case'}")
            continue
        if recorded[name] != now[name]:
            differences += 1
            print(f"{name}:\n  was: {recorded[name]}\n  now: {now[name]}")
    print(f"{len(now)} cases, {sum(map(len, now.values()))} findings, {differences} differences")
    return 1 if differences else 0


def time_per_report(passes: int = 3) -> float:
    """CPU ms a report over the generated corpus, least of `passes`."""
    items = corpus(*GENERATED)
    best = float("inf")
    for p in range(passes):
        blocks = []
        for i, item in enumerate(items):
            data = dict(item["data"])  # a block the checker has not seen: facts built again
            data["_nonce"] = p * len(items) + i
            blocks.append(data)
        started = time.process_time()
        for item, data in zip(items, blocks, strict=True):
            check_report(item["report"], data)
        best = min(best, time.process_time() - started)
    return best / len(items) * 1000


def _texts() -> list[str]:
    texts = []
    for _name, report, _data in cases():
        texts += [text.lower() for _field, text in report_texts(report)]
    return sorted(set(texts))


def check_patterns(randoms: int = 20000) -> int:
    """The led patterns against the patterns as written: the number of differences."""
    rng = random.Random(2026)
    texts = _texts()
    words = sorted({w for t in texts for w in re.split(r"(\W)", t) if w})
    texts += ["".join(rng.choice(words) for _ in range(rng.randint(1, 30))) for _ in range(randoms)]
    differences = 0
    checked: set[str] = set()
    for module in (vocabulary, reading, spelled, checker, closed, forms):
        for name, led in vars(module).items():
            if not isinstance(led, re.Pattern) or not led.pattern.startswith("(?=["):
                continue
            if led.pattern in checked:  # imported by another module too
                continue
            checked.add(led.pattern)
            written = re.compile(led.pattern[led.pattern.index("])(?:") + 5 : -1], led.flags)
            for text in texts:
                spans = [rng.randint(0, len(text)) for _ in range(2)]
                start, end = min(spans), max(spans)
                for a, b in (
                    (list(written.finditer(text)), list(led.finditer(text))),
                    ([written.search(text, start, end)], [led.search(text, start, end)]),
                    ([written.match(text, start, end)], [led.match(text, start, end)]),
                ):
                    if [m and (m.span(), m.groups()) for m in a] != [
                        m and (m.span(), m.groups()) for m in b
                    ]:
                        differences += 1
                        print(f"{module.__name__}.{name}: differs on {text!r}")
    print(f"{len(checked)} led patterns, {len(texts)} texts, {differences} differences")
    return 1 if differences else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", type=Path, metavar="FILE")
    mode.add_argument("--compare", type=Path, metavar="FILE")
    mode.add_argument("--time", action="store_true")
    mode.add_argument("--patterns", action="store_true")
    args = parser.parse_args()
    if args.record:
        found = results()
        args.record.write_text(json.dumps(found, ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"{len(found)} cases, {sum(map(len, found.values()))} findings -> {args.record}")
        return 0
    if args.compare:
        return compare(args.compare)
    if args.patterns:
        return check_patterns()
    print(f"{time_per_report():.3f} ms CPU a report (least of 3 passes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
