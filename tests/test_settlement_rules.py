"""One test per rule of docs/settlement.md: each reason code and alert from a crafted log."""

from __future__ import annotations

import numpy as np
import pytest

from cardsim.records.keys import TerminalKey, compute_tacs
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.kernel import settle
from cardsim.settlement.reasons import BOOKED, PENDING, Alert, Reason
from cardsim.settlement.reference import reference_settle
from cardsim.synthetic import SyntheticDay
from tests.conftest import small_day


def both(day: SyntheticDay, cutoff_ms: int | None = None):
    """Settle with the kernel and the reference; they must agree exactly."""
    fast = settle(day.log, day.registry, cutoff_ms=cutoff_ms)
    slow = reference_settle(day.log, day.registry, FeeSchedule(), cutoff_ms)
    np.testing.assert_array_equal(fast.outcome, slow.outcome)
    np.testing.assert_array_equal(fast.booked, slow.booked)
    np.testing.assert_array_equal(fast.alerts, slow.alerts)
    np.testing.assert_array_equal(fast.positions, slow.positions)
    return fast


def rows_of(day: SyntheticDay, b: int) -> np.ndarray:
    return np.flatnonzero(day.log.batch_row == b)


def alert_codes(result) -> set[int]:
    return set(result.alerts["code"].tolist())


def test_reason_and_alert_values_are_stable() -> None:
    assert [(r.name, r.value) for r in Reason] == [
        ("DUPLICATE_BATCH", 1),
        ("UNKNOWN_KEY", 2),
        ("REVOKED_KEY", 3),
        ("KEY_TERMINAL_MISMATCH", 4),
        ("MALFORMED_BATCH", 5),
        ("BAD_SIGNATURE", 6),
        ("MALFORMED_RECORD", 7),
        ("BAD_TAC", 8),
        ("DUPLICATE_RECORD", 9),
        ("RECORD_CONFLICT", 10),
    ]
    assert [(a.name, a.value) for a in Alert] == [
        ("TAMPERED_BATCH", 1),
        ("REVOKED_KEY_USED", 2),
        ("FORGED_RECORD", 3),
        ("RECORD_CONFLICT", 4),
        ("TERMINAL_SERIAL_GAP", 5),
        ("BATCH_SERIAL_GAP", 6),
        ("BATCH_CHAIN_BREAK", 7),
        ("BATCH_CONFLICT", 8),
        ("CARD_COUNTER_GAP", 9),
        ("CARD_COUNTER_CLASH", 10),
        ("BALANCE_ROLLBACK", 11),
        ("HOTLISTED_CARD_USED", 12),
    ]
    assert (BOOKED, PENDING) == (0, 255)


def test_clean_day_books_everything_with_no_alerts(clean_day: SyntheticDay) -> None:
    result = both(clean_day)
    assert (result.outcome == BOOKED).all()
    assert len(result.alerts) == 0
    assert result.positions["net_fen"].sum() == 0


def test_repeated_batch_is_counted_once(clean_day: SyntheticDay) -> None:
    clean_day.log = clean_day.log.concat(clean_day.log)
    result = both(clean_day)
    half = len(result.outcome) // 2
    assert (result.outcome[:half] == BOOKED).all()
    assert (result.outcome[half:] == Reason.DUPLICATE_BATCH).all()


@pytest.mark.parametrize(
    "change, reason",
    [
        ("unknown", Reason.UNKNOWN_KEY),
        ("revoked", Reason.REVOKED_KEY),
        ("mismatch", Reason.KEY_TERMINAL_MISMATCH),
    ],
)
def test_key_problems_reject_the_batch(
    clean_day: SyntheticDay, change: str, reason: Reason
) -> None:
    b = 3
    key_id = int(clean_day.log.batches["key_id"][b])
    key = clean_day.registry.terminals[key_id]
    if change == "unknown":
        del clean_day.registry.terminals[key_id]
    elif change == "revoked":
        clean_day.registry.terminals[key_id] = TerminalKey(
            key_id, key.terminal_id, key.public_key, revoked=True
        )
    else:
        clean_day.registry.terminals[key_id] = TerminalKey(
            key_id, key.terminal_id + 1, key.public_key
        )
    result = both(clean_day)
    assert (result.outcome[rows_of(clean_day, b)] == reason).all()
    if reason == Reason.REVOKED_KEY:
        assert Alert.REVOKED_KEY_USED in alert_codes(result)


def test_header_that_lies_about_its_records_is_malformed(clean_day: SyntheticDay) -> None:
    clean_day.log.batches["record_count"][2] += 1
    clean_day.resign(2)
    result = both(clean_day)
    assert (result.outcome[rows_of(clean_day, 2)] == Reason.MALFORMED_BATCH).all()


def test_altered_record_breaks_the_signature(clean_day: SyntheticDay) -> None:
    row = rows_of(clean_day, 4)[1]
    clean_day.log.records["amount_fen"][row] -= 1
    result = both(clean_day)
    assert (result.outcome[rows_of(clean_day, 4)] == Reason.BAD_SIGNATURE).all()
    assert Alert.TAMPERED_BATCH in alert_codes(result)


def test_forged_record_in_a_signed_batch_fails_its_tac(clean_day: SyntheticDay) -> None:
    row = rows_of(clean_day, 5)[0]
    clean_day.log.records["amount_fen"][row] += 500
    clean_day.resign(5)
    result = both(clean_day)
    assert result.outcome[row] == Reason.BAD_TAC
    assert (np.delete(result.outcome, row) == BOOKED).all()
    assert Alert.FORGED_RECORD in alert_codes(result)


def test_out_of_range_field_is_malformed(clean_day: SyntheticDay) -> None:
    row = rows_of(clean_day, 6)[0]
    clean_day.log.records["kind"][row] = 99
    clean_day.log.records["tac"] = compute_tacs(
        clean_day.registry.master_key, clean_day.log.records
    )
    clean_day.resign(6)
    result = both(clean_day)
    assert result.outcome[row] == Reason.MALFORMED_RECORD


def _reupload_in_new_batch(day: SyntheticDay, b: int, alter: bool) -> np.ndarray:
    """Upload batch b's records again under a new batch serial (a terminal's resend)."""
    again = day.log.batches[b : b + 1].copy()
    again["batch_serial"] += 10_000
    records = day.log.records[rows_of(day, b)].copy()
    if alter:
        records["balance_after_fen"][0] += 1
        records["tac"] = compute_tacs(day.registry.master_key, records)
    from cardsim.records.log import RecordLog

    day.log = day.log.concat(RecordLog(records, np.zeros(len(records), np.int64), again))
    day.resign(len(day.log.batches) - 1)
    return np.flatnonzero(day.log.batch_row == len(day.log.batches) - 1)


def test_same_record_in_another_batch_is_a_duplicate_record(clean_day: SyntheticDay) -> None:
    rows = _reupload_in_new_batch(clean_day, 1, alter=False)
    result = both(clean_day)
    assert (result.outcome[rows] == Reason.DUPLICATE_RECORD).all()


def test_same_id_other_content_is_a_conflict(clean_day: SyntheticDay) -> None:
    rows = _reupload_in_new_batch(clean_day, 1, alter=True)
    result = both(clean_day)
    assert result.outcome[rows[0]] == Reason.RECORD_CONFLICT
    assert (result.outcome[rows[1:]] == Reason.DUPLICATE_RECORD).all()
    assert Alert.RECORD_CONFLICT in alert_codes(result)
    assert Alert.BATCH_SERIAL_GAP in alert_codes(result)


def test_missing_batch_shows_as_serial_gaps(clean_day: SyntheticDay) -> None:
    terminal = int(clean_day.log.batches["terminal_id"][0])
    mine = np.flatnonzero(clean_day.log.batches["terminal_id"] == terminal)
    assert len(mine) >= 3
    middle = mine[np.argsort(clean_day.log.batches["batch_serial"][mine])][1]
    keep = clean_day.log.batch_row != middle
    clean_day.log.records = clean_day.log.records[keep]
    clean_day.log.batch_row = clean_day.log.batch_row[keep]
    clean_day.log.batches["record_count"][middle] = 0
    result = both(clean_day)
    codes = alert_codes(result)
    assert {Alert.TERMINAL_SERIAL_GAP, Alert.CARD_COUNTER_GAP} <= codes


def test_cloned_card_counter_clash(clean_day: SyntheticDay) -> None:
    log = clean_day.log
    a, b = rows_of(clean_day, 7)[0], rows_of(clean_day, 8)[0]
    log.records["card_id"][b] = log.records["card_id"][a]
    log.records["card_counter"][b] = log.records["card_counter"][a]
    log.records["tac"] = compute_tacs(clean_day.registry.master_key, log.records)
    clean_day.resign(7)
    clean_day.resign(8)
    result = both(clean_day)
    assert Alert.CARD_COUNTER_CLASH in alert_codes(result)
    assert result.outcome[a] == result.outcome[b] == BOOKED


def test_late_batches_are_pending(clean_day: SyntheticDay) -> None:
    cutoff = int(np.median(clean_day.log.batches["uploaded_ms"]))
    result = both(clean_day, cutoff_ms=cutoff)
    late = clean_day.log.batches["uploaded_ms"][clean_day.log.batch_row] > cutoff
    assert (result.outcome[late] == PENDING).all()
    assert (result.outcome[~late] == BOOKED).all()


def test_dirty_day_matches_reference_and_conserves(dirty_day: SyntheticDay) -> None:
    result = both(dirty_day)
    counts = result.counts()
    assert counts["booked"] + counts["rejected"] + counts["pending"] == len(dirty_day.log.records)
    forged = {
        (
            int(dirty_day.log.records["terminal_id"][r]),
            int(dirty_day.log.records["terminal_serial"][r]),
        )
        for r in np.flatnonzero(result.outcome == Reason.BAD_TAC)
    }
    assert forged == set(dirty_day.forged_ids)
    tampered = set(np.unique(dirty_day.log.batch_row[result.outcome == Reason.BAD_SIGNATURE]))
    assert tampered == set(dirty_day.tampered_batches)


def test_workers_do_not_change_the_result() -> None:
    day = small_day(seed=9, records=3000, terminals=30, repeat_fraction=0.05)
    from cardsim.records import log as log_module

    old = log_module.ROW_GROUP_RECORDS
    log_module.ROW_GROUP_RECORDS = 200
    try:
        one = settle(day.log, day.registry, workers=1)
        two = settle(day.log, day.registry, workers=2)
    finally:
        log_module.ROW_GROUP_RECORDS = old
    for name in ("outcome", "booked", "alerts", "positions"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
