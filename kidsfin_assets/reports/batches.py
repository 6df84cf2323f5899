"""One week through OpenAI's Batch API: half the price, answers within 24 hours, a queue
of its own that does not touch the per-minute limits.

A gold run in batch mode first collects what its week's finished batches answered (every
line recorded in the ledger and judged like a sync answer), then submits the kids still
without a report -- claimed first, so no kid-week is ever in two batches -- and returns.
While batches are open the week is not materialised; `openai_batch_sensor` requests the
run again when they have finished, so repeating it always converges.

`WeekBatches` is ~280 lines (above the engine's ~250): collecting and submitting share the
life of a batch row (preparing, open, ingested or abandoned) and its claims, which read
best in one place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import openai
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kidsfin_assets.reports import ledger
from kidsfin_assets.reports.answers import Exchange, ReportError, estimate_prompt_tokens
from kidsfin_assets.reports.openai_client import ReportSession
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import (
    kid_weekly_analysis,
    kid_weekly_reports,
    openai_batches,
    report_ledger,
)

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
# A batch's claims outlive the 24 h window; the collecting run releases them.
BATCH_LEASE_SECONDS = 26 * 3600
# How long a run may take from recording a batch to recording its id (upload included).
PREPARING_LEASE_SECONDS = 600
OPEN = ("preparing", "validating", "in_progress", "finalizing", "cancelling")
TERMINAL = ("completed", "failed", "expired", "cancelled")
# Result lines stored per transaction: a crash loses at most this many stored lines'
# work, never an answer (the output file stays with the provider and is read again).
INGEST_CHUNK_LINES = 500
PROGRESS_LOG_SECONDS = 15.0


# A kid is named in a custom_id by this prefix and a keyed hash of its id: the key (the
# warehouse's own id) never leaves the warehouse, so the file names no kid OpenAI could
# look up or follow across weeks.
PSEUDONYM_PREFIX = "k"
PSEUDONYM_CHARS = 24


def kid_pseudonym(key: str, week_key: str, kid_id: int) -> str:
    digest = hmac.new(key.encode(), f"{week_key}:{kid_id}".encode(), hashlib.sha256)
    return PSEUDONYM_PREFIX + digest.hexdigest()[:PSEUDONYM_CHARS]


def custom_id(week_key: str, pseudonym: str, input_hash: str) -> str:
    """Names the week, the kid (by its pseudonym) and the input it was asked for."""
    return f"{week_key}:{pseudonym}:{input_hash[:16]}"


def parse_custom_id(value: str) -> tuple[str, str, str] | None:
    """(week, kid, input hash); the kid is a pseudonym, or a kid id in the lines of
    batches submitted before kids were pseudonymised."""
    parts = value.split(":")
    if len(parts) != 3 or not parts[1]:
        return None
    return parts[0], parts[1], parts[2]


def batch_owner(row_id: str) -> str:
    return f"batch:{row_id}"


@dataclass(frozen=True)
class StagedLine:
    kid_id: int
    input_hash: str
    tokens: int  # the line's estimated size in the model's queue


@dataclass
class StagedFile:
    """One input file being built on disk (never the week's lines in memory at once)."""

    # Unlinked at once, so a killed run leaves nothing on disk; closed by close().
    handle: IO[bytes] = field(
        default_factory=lambda: tempfile.TemporaryFile(prefix="kidsfin-")  # noqa: SIM115
    )
    lines: list[StagedLine] = field(default_factory=list)
    size: int = 0

    def add(self, line: StagedLine, data: bytes) -> None:
        self.handle.write(data)
        self.lines.append(line)
        self.size += len(data)

    def keeping(self, kids: set[int]) -> StagedFile:
        """This file without the lines of kids not in `kids` (claimed meanwhile by another
        run), rewritten line by line; itself when nothing is dropped."""
        if len(kids) == len(self.lines):
            return self
        kept = StagedFile()
        self.handle.seek(0)
        for line, data in zip(self.lines, self.handle, strict=True):
            if line.kid_id in kids:
                kept.add(line, data)
        self.close()
        return kept

    def close(self) -> None:
        self.handle.close()


@dataclass(frozen=True)
class ResultLine:
    """One output line matched to a claimed kid, read and priced (not yet judged)."""

    kid_id: int
    input_hash: str
    exchange: Exchange


# Stores one chunk of result lines in one transaction.
RecordLines = Callable[[list[ResultLine]], None]
Matched = tuple[str, int, str, dict[str, Any]]  # answer id, kid, input hash, line
Wanted = tuple[int, str, list[dict[str, str]]]  # kid, input hash, prompt messages


def _chunked(items: Iterable[Matched], size: int) -> Iterator[list[Matched]]:
    chunk: list[Matched] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Progress:
    """One log line every PROGRESS_LOG_SECONDS while a batch is ingested, not one a line
    (each Dagster log line is an event-log write)."""

    def __init__(self, log: Any, batch_id: str, expected: int) -> None:
        self.log, self.batch_id, self.expected = log, batch_id, expected
        self.lines = self.earlier = 0
        self.started = self.logged = time.monotonic()

    def done(self, lines: int, earlier: int) -> None:
        self.lines += lines
        self.earlier += earlier
        now = time.monotonic()
        if now - self.logged >= PROGRESS_LOG_SECONDS:
            self.logged = now
            rate = self.lines / max(now - self.started, 1e-9)
            self.log.info(
                f"batch {self.batch_id}: {self.lines:,} of {self.expected:,} lines "
                f"collected ({rate:,.0f}/s)"
            )


def open_batches(conn: Connection, week_start: dt.date | None = None) -> list[dict[str, Any]]:
    t = openai_batches
    query = sa.select(t).where(t.c.ingested_at.is_(None)).order_by(t.c.created_at)
    if week_start is not None:
        query = query.where(t.c.week_start == week_start)
    return [dict(r._mapping) for r in conn.execute(query)]


def week_batches(conn: Connection, week_start: dt.date) -> list[dict[str, Any]]:
    t = openai_batches
    query = sa.select(t).where(t.c.week_start == week_start).order_by(t.c.created_at)
    return [dict(r._mapping) for r in conn.execute(query)]


def _update(engine: Engine, row_id: str, **values: Any) -> None:
    t = openai_batches
    with engine.begin() as conn:
        conn.execute(t.update().where(t.c.id == row_id).values(**values))


def queue_lock(conn: Connection, model: str) -> None:
    """One submitter at a time per model, so the enqueued-token budget holds across
    processes (SQLite: BEGIN IMMEDIATE already serialises)."""
    if not db.is_sqlite(conn.engine):
        key = sa.func.hashtextextended(f"kidsfin:batch-queue:{model}", 0)
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


def enqueued_tokens(conn: Connection, model: str) -> int:
    t = openai_batches
    query = sa.select(sa.func.coalesce(sa.func.sum(t.c.estimated_tokens), 0)).where(
        t.c.model == model, t.c.status.in_(OPEN)
    )
    return int(conn.execute(query).scalar_one())


class WeekBatches:
    """Submits and collects one week's batches for a gold run."""

    def __init__(
        self,
        client: openai.OpenAI,
        session: ReportSession,
        engine: Engine,
        week_key: str,
        week_start: dt.date,
        run_id: str,
        log: Any,
        submitter: str,
        pseudonym_key: str,
    ) -> None:
        self.client, self.session, self.engine = client, session, engine
        self.submitter = submitter  # host:pid:token of this run's writer
        self.week_key, self.week_start, self.run_id, self.log = week_key, week_start, run_id, log
        self.resource = session.resource
        self.pseudonym_key = pseudonym_key  # the warehouse's id (ledger.warehouse_id)
        self.chunks_stored = 0  # by this run's collect: the tables are analysed as it grows

    # --- collecting --------------------------------------------------------------------

    def collect(self, record: RecordLines) -> int:
        """Ingest every finished batch of the week; `record(lines)` stores a chunk of
        lines in one transaction. Returns the lines ingested."""
        with self.engine.connect() as conn:
            rows = open_batches(conn, self.week_start)
        ingested = 0
        self.chunks_stored = 0
        for row in rows:
            batch = self._refresh(row)
            if batch is not None and batch.status in TERMINAL:
                ingested += self._ingest(row, batch, record)
        return ingested

    def _refresh(self, row: dict[str, Any]) -> Any:
        """The batch as OpenAI sees it now; adopts a batch created by a run killed before
        it could record the id, and creates one for a file uploaded but never submitted."""
        if row["batch_id"] is None:
            if not self._submitter_gone(row):
                return None  # another run is uploading or creating it right now
            if row["input_file_id"] is None:  # killed before the upload: nothing was sent
                self._abandon(row)
                return None
            batch = self._adopt(row) or self._create(row)
        else:
            batch = self.client.batches.retrieve(row["batch_id"])
        counts = batch.request_counts
        _update(
            self.engine,
            row["id"],
            status=batch.status,
            lines_completed=counts.completed if counts else 0,
            lines_failed=counts.failed if counts else 0,
        )
        return batch

    def _submitter_gone(self, row: dict[str, Any]) -> bool:
        if row["submitter"] and ledger.owner_is_dead(row["submitter"]):
            return True
        with self.engine.connect() as conn:
            return db.clock_epoch(conn) > (row["preparing_until"] or 0.0)

    def _adopt(self, row: dict[str, Any]) -> Any:
        for batch in self.client.batches.list(limit=100):
            if batch.input_file_id == row["input_file_id"] or (
                (batch.metadata or {}).get("kidsfin_id") == row["id"]
            ):
                self.log.info(f"adopted batch {batch.id} of an interrupted run (file kept)")
                _update(self.engine, row["id"], batch_id=batch.id)
                return batch
        return None

    def _create(self, row: dict[str, Any]) -> Any:
        batch = self.client.batches.create(
            input_file_id=row["input_file_id"],
            endpoint=ENDPOINT,
            completion_window=COMPLETION_WINDOW,
            metadata={"kidsfin_id": row["id"], "week": self.week_key},
        )
        _update(self.engine, row["id"], batch_id=batch.id, status=batch.status)
        self.log.info(f"batch {batch.id}: {row['lines']} reports submitted ({row['id']})")
        return batch

    def _abandon(self, row: dict[str, Any]) -> None:
        self._close(row, status="abandoned")

    def _close(self, row: dict[str, Any], **values: Any) -> None:
        """Done with a batch: its claims released (kids without an answer are asked again)
        and its row marked ingested, in one transaction."""
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            ledger.release_owner(conn, self.week_start, batch_owner(row["id"]))
            t = openai_batches
            conn.execute(t.update().where(t.c.id == row["id"]).values(ingested_at=now, **values))

    def _ingest(self, row: dict[str, Any], batch: Any, record: RecordLines) -> int:
        """Every line of the output and error files, matched by custom_id (never by order)
        and stored in chunks; then the batch's claims are released: lines without an
        answer are asked again. Killed half-way, the next run reads the files again and
        skips what the ledger already holds (a line's answer id is derived from it)."""
        with self.engine.connect() as conn:
            claimed = ledger.claimed_by(conn, self.week_start, batch_owner(row["id"]))
        progress = _Progress(self.log, batch.id, row["lines"])
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            matched = self._matched(self._lines(file_id), claimed, batch.id)
            for chunk in _chunked(matched, INGEST_CHUNK_LINES):
                progress.done(len(chunk), self._store(chunk, record))
        self._close(row, finished_at=dt.datetime.now(dt.UTC))
        lines = progress.lines
        missing = row["lines"] - lines
        self.log.info(
            f"batch {batch.id} {batch.status}: {lines} lines collected"
            + (f" ({progress.earlier} stored by an earlier run)" if progress.earlier else "")
            + (f", {missing} without a line (asked again)" if missing > 0 else "")
        )
        return lines

    def _lines(self, file_id: str) -> Iterator[dict[str, Any]]:
        """The file's lines, streamed (an output file of 50,000 lines is ~100 MB)."""
        with self.client.files.with_streaming_response.content(file_id) as content:
            for raw in content.iter_lines():
                if raw.strip():
                    try:
                        yield json.loads(raw)
                    except ValueError:
                        continue  # a broken line: its kid is asked again

    def _matched(
        self, lines: Iterable[dict[str, Any]], claimed: dict[int, str], batch_id: str
    ) -> Iterator[Matched]:
        """(answer id, kid, input hash claimed for, line) of each line for a kid this
        batch claimed."""
        kids = {kid_pseudonym(self.pseudonym_key, self.week_key, kid): kid for kid in claimed}
        kids.update({str(kid): kid for kid in claimed})  # lines of an earlier version
        for line in lines:
            parsed = parse_custom_id(str(line.get("custom_id", "")))
            kid = kids.get(parsed[1]) if parsed is not None and parsed[0] == self.week_key else None
            if kid is None:
                self.log.warning(
                    f"batch {batch_id}: a line for no claimed kid: {line.get('custom_id')}"
                )
                continue
            # Deterministic: collecting the same file twice stores each line once.
            digest = hashlib.sha256(f"{batch_id}:{line['custom_id']}".encode()).hexdigest()
            yield digest[:32], kid, claimed[kid], line

    def _store(self, chunk: list[Matched], record: RecordLines) -> int:
        """Record the chunk's lines the ledger does not hold yet; returns how many it
        held (stored by an earlier, interrupted run: neither judged nor stored again)."""
        with self.engine.connect() as conn:
            earlier = ledger.stored_answers(conn, [answer_id for answer_id, *_ in chunk])
        fresh = [
            ResultLine(kid, digest, self._exchange(answer_id, line))
            for answer_id, kid, digest, line in chunk
            if answer_id not in earlier
        ]
        if self.chunks_stored & (self.chunks_stored - 1) == 0:  # 0, 1, 2, 4, 8, ...
            self._analyze()
        if fresh:
            record(fresh)
        self.chunks_stored += 1
        return len(chunk) - len(fresh)

    def _analyze(self) -> None:
        """Statistics of what each chunk reads (the week's silver rows, its reports and
        ledger rows of a list of kids), taken before the first chunk and whenever the
        chunks stored doubled: a server without autovacuum would otherwise plan every
        chunk's reads as scans of the whole week (100,000 kids: each chunk read the
        week's 100,000 silver rows and every report and ledger row stored so far)."""
        with self.engine.begin() as conn:
            db.analyze_keys(conn, [kid_weekly_analysis, kid_weekly_reports, report_ledger])

    def _exchange(self, answer_id: str, line: dict[str, Any]) -> Exchange:
        response = line.get("response") or {}
        status = response.get("status_code")
        if status == 200 and isinstance(response.get("body"), dict):
            body = response["body"]
            estimate = int((body.get("usage") or {}).get("prompt_tokens") or 0)
            return self.session.read_answer(answer_id, body, estimate, tier="batch")
        error = line.get("error") or (response.get("body") or {}).get("error") or {}
        code = error.get("code") or (f"http_{status}" if status else "failed")
        message = error.get("message") or "no answer"
        kind = f"batch_{code}"[:32]
        return Exchange(answer_id, kind, error=ReportError(f"{code}: {message}"[:300], kind))

    # --- submitting ----------------------------------------------------------------------

    def submit(self, wanted: Iterable[Wanted]) -> list[str]:
        """Submit kids ((kid, input hash, messages), read one at a time) in files within
        the limits and the model's enqueued-token budget; returns the batch ids created.
        One file is built (on disk) and uploaded at a time: memory does not grow with the
        week."""
        created = []
        with contextlib.closing(self._files(wanted)) as files:
            for staged in files:
                with contextlib.closing(staged):
                    reserved = self._reserve(staged.lines)
                    if reserved is None:
                        self.log.warning(
                            f"the {self.resource.model} batch queue is full "
                            f"(openai.batch_queue_tokens={self.resource.batch_queue_tokens:,}): "
                            "the rest of the week is submitted by a later run"
                        )
                        break
                    row_id, mine = reserved
                    with contextlib.closing(staged.keeping(mine)) as kept:
                        batch_id = self._send(row_id, kept)
                if batch_id:
                    created.append(batch_id)
        return created

    def _files(self, wanted: Iterable[Wanted]) -> Iterator[StagedFile]:
        """Input files within OpenAI's limits (batch_max_requests lines, batch_max_bytes),
        each built when the one before has been submitted."""
        most, most_bytes = self.resource.batch_max_requests, self.resource.batch_max_bytes
        staged = StagedFile()
        for kid, digest, messages in wanted:
            line, data = self._line(kid, digest, messages)
            if staged.lines and (len(staged.lines) >= most or staged.size + len(data) > most_bytes):
                yield staged
                staged = StagedFile()
            staged.add(line, data)
        if staged.lines:
            yield staged
        else:
            staged.close()

    def _line(
        self, kid: int, digest: str, messages: list[dict[str, str]]
    ) -> tuple[StagedLine, bytes]:
        body = self.session.request_body(messages)
        entry = {
            "custom_id": custom_id(
                self.week_key, kid_pseudonym(self.pseudonym_key, self.week_key, kid), digest
            ),
            "method": "POST",
            "url": ENDPOINT,
            "body": body,
        }
        data = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
        tokens = estimate_prompt_tokens(messages) + self.resource.max_tokens
        return StagedLine(kid, digest, tokens), data

    def _reserve(self, lines: list[StagedLine]) -> tuple[str, set[int]] | None:
        """Record the batch and claim its kids before anything is uploaded; None when the
        model's queue budget has no room for it. Returns the row and the kids claimed."""
        row_id = uuid.uuid4().hex
        tokens = sum(line.tokens for line in lines)
        with self.engine.begin() as conn:
            queue_lock(conn, self.resource.model)
            preparing_until = db.clock_epoch(conn) + PREPARING_LEASE_SECONDS
            if (
                enqueued_tokens(conn, self.resource.model) + tokens
                > self.resource.batch_queue_tokens
            ):
                return None
            conn.execute(
                openai_batches.insert().values(
                    id=row_id,
                    week_start=self.week_start,
                    model=self.resource.model,
                    run_id=self.run_id,
                    status="preparing",
                    lines=0,
                    estimated_tokens=tokens,
                    created_at=dt.datetime.now(dt.UTC),
                    submitter=self.submitter,
                    preparing_until=preparing_until,
                )
            )
        claims = ledger.Claims(
            self.engine,
            self.week_start,
            self.run_id,
            BATCH_LEASE_SECONDS,
            owner=batch_owner(row_id),
        )
        result = claims.claim({line.kid_id: line.input_hash for line in lines})
        _update(self.engine, row_id, lines=len(result.mine))
        return row_id, result.mine

    def _send(self, row_id: str, staged: StagedFile) -> str | None:
        if not staged.lines:
            _update(self.engine, row_id, status="abandoned", ingested_at=dt.datetime.now(dt.UTC))
            return None
        staged.handle.seek(0)  # streamed from disk by the SDK, not read into memory
        upload = self.client.files.create(
            file=(f"kidsfin-{self.week_key}-{row_id}.jsonl", staged.handle), purpose="batch"
        )
        _update(self.engine, row_id, input_file_id=upload.id)  # before the batch exists
        row = {"id": row_id, "input_file_id": upload.id, "lines": len(staged.lines)}
        return self._create(row).id
