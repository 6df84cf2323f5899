"""The threaded client (openai.concurrency: threads) held to the same promises as the
default, the event loop: the same tests, run with a thread a request, a transaction a
bucket grant and a record a transaction.

Among them: a warehouse cut mid-run through the TCP proxy (paid answers spooled before the
run waits, and nothing is paid twice), a long outage (the spool carries the paid answers
to the next run), the sliding-window limit, a fatal key error, faults with retries, two
runs of one week sharing the claims, and answers rejected (schema, grounding) while the
warehouse is away, spooled like accepted ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kidsfin_assets_tests.test_gold_faults import (  # noqa: F401 (the fixture is used)
    proxy,
    test_a_200_without_a_report_is_its_own_error_and_asked_again,
    test_a_long_outage_keeps_paid_answers_in_the_spool_for_the_next_run,
    test_a_nul_character_in_an_answer_does_not_stop_it_being_stored,
    test_a_rejected_answer_paid_during_a_long_outage_reaches_the_ledger_through_the_spool,
    test_a_rejected_answer_paid_during_a_short_outage_is_stored_once_and_counted,
    test_a_run_cut_off_longer_than_its_lease_does_not_ask_for_kids_another_run_took,
    test_a_trickling_answer_is_abandoned_at_the_deadline,
    test_a_warehouse_outage_mid_run_loses_and_repays_nothing,
    test_absurd_usage_is_flagged_and_moves_the_shared_bucket_by_one_request_at_most,
)
from kidsfin_assets_tests.test_gold_ledger import (
    test_every_paid_answer_is_in_the_record_across_a_step_retry,
    test_the_same_failure_for_every_request_stops_the_run_with_the_servers_words,
    test_two_runs_of_one_week_at_once_pay_once,
)
from kidsfin_assets_tests.test_gold_reports import (
    test_all_reports_written_under_faults_without_duplicates,
    test_insufficient_quota_stops_at_once_and_keeps_reports,
    test_progress_is_logged_in_batches,
    test_rate_limit_never_exceeded,
    test_reports_usage_cost_and_privacy,
    test_resume_after_failure_sends_only_missing_kids,
    test_unauthorised_key_fails_fast_with_advice,
)

__all__ = [
    "test_a_200_without_a_report_is_its_own_error_and_asked_again",
    "test_a_long_outage_keeps_paid_answers_in_the_spool_for_the_next_run",
    "test_a_nul_character_in_an_answer_does_not_stop_it_being_stored",
    "test_a_rejected_answer_paid_during_a_long_outage_reaches_the_ledger_through_the_spool",
    "test_a_rejected_answer_paid_during_a_short_outage_is_stored_once_and_counted",
    "test_a_run_cut_off_longer_than_its_lease_does_not_ask_for_kids_another_run_took",
    "test_a_trickling_answer_is_abandoned_at_the_deadline",
    "test_a_warehouse_outage_mid_run_loses_and_repays_nothing",
    "test_absurd_usage_is_flagged_and_moves_the_shared_bucket_by_one_request_at_most",
    "test_all_reports_written_under_faults_without_duplicates",
    "test_every_paid_answer_is_in_the_record_across_a_step_retry",
    "test_insufficient_quota_stops_at_once_and_keeps_reports",
    "test_progress_is_logged_in_batches",
    "test_rate_limit_never_exceeded",
    "test_reports_usage_cost_and_privacy",
    "test_resume_after_failure_sends_only_missing_kids",
    "test_the_same_failure_for_every_request_stops_the_run_with_the_servers_words",
    "test_two_runs_of_one_week_at_once_pay_once",
    "test_unauthorised_key_fails_fast_with_advice",
]


@pytest.fixture(autouse=True)
def _threaded_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """After conftest's isolation (which clears KIDSFIN_*): every test here runs on threads,
    a transaction a grant (a test's own setting, if it sets one, wins: setup_week)."""
    monkeypatch.setenv("KIDSFIN_OPENAI__CONCURRENCY", "threads")
    monkeypatch.setenv("KIDSFIN_OPENAI__RATE_LIMIT_LEASE_SECONDS", "0")
    yield
