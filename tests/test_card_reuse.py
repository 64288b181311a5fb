"""Cloned cards across clearing days: a record booked today that spends a card counter a
closed day already booked is a CARD_COUNTER_CLASH, whichever path the card pass takes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsim.ledger.day_close import DayInputs, close_day
from cardsim.records.keys import compute_tacs
from cardsim.records.log import RecordLog, write_log
from cardsim.settlement.booked_index import BookedIndex, gaps_left
from cardsim.settlement.cards import _in_sorted, pairs_booked_before
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.kernel import settle
from cardsim.settlement.reasons import BOOKED, Alert
from cardsim.settlement.result import Settlement
from cardsim.synthetic import SyntheticDay
from tests.conftest import small_day
from tests.ledger_days import index_of
from tests.mutations import clone, forge, rows_of, take_batches

u64 = st.integers(0, 2**64 - 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(u64, max_size=60), st.lists(u64, max_size=60))
def test_in_sorted_is_membership(keys: list[int], known: list[int]) -> None:
    a = np.sort(np.array(keys, np.uint64))
    b = np.sort(np.array(known, np.uint64))
    np.testing.assert_array_equal(_in_sorted(a, b), np.isin(a, b))


cards = st.sampled_from([1, 2, 7, 2**32 - 1, 2**32, 2**40 + 3, 2**64 - 1])
counters = st.integers(0, 5) | st.just(2**32 - 1)
pairs = st.lists(st.tuples(cards, counters), max_size=40)


@settings(max_examples=200, deadline=None)
@given(pairs, st.lists(pairs, max_size=3))
def test_pairs_booked_before_for_any_card_id(today: list, days: list) -> None:
    closed = BookedIndex.of_days(
        [(np.zeros(0, np.uint64), np.zeros(0, np.uint64))], [_arrays(d) for d in days]
    )
    spent = {p for d in days for p in d}
    expected = [p in spent for p in today]
    card, counter = _arrays(today)
    np.testing.assert_array_equal(pairs_booked_before(card, counter, closed), expected)
    keys = closed.card_keys()
    assert (np.diff(keys.astype(object)) > 0).all()
    assert sorted(int(k) for k in keys) == sorted(c << 32 | n for c, n in spent if c < 2**32)


def _arrays(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    card = np.array([c for c, _ in pairs], np.uint64)
    return card, np.array([n for _, n in pairs], np.uint32)


def two_days(seed: int, retry: bool, big_cards: bool) -> tuple[SyntheticDay, RecordLog, RecordLog]:
    """One clean day cut in two, with two day-2 records cloning day-1 records' cards."""
    day = small_day(seed, 300, 6, 10, repeat_fraction=0.0, tampered_batches=0, forged_records=0)
    n = len(day.log.batches)
    if big_cards:  # card ids of 2^40 and up: no card key packs into a uint64
        day.log.records["card_id"] += np.uint64(2**40)
        day.log.records["tac"] = compute_tacs(day.registry.master_key, day.log.records)
        for b in range(n):
            day.resign(b)
    for a, b in ((0, n // 2), (1, n - 1)):
        clone(day, int(rows_of(day.log, a)[0]), int(rows_of(day.log, b)[0]))
    first = take_batches(day.log, list(range(n // 2)))
    second = take_batches(day.log, [*range(n // 2, n), *([0] if retry else [])])
    return day, first, second


@pytest.mark.parametrize(
    ("retry", "big_cards"),
    [(False, False), (True, False), (False, True)],
    ids=["card-keys", "rebuilt-after-a-retry", "card-ids-over-2^32"],
)
@pytest.mark.parametrize("workers", [1, 2])
def test_a_counter_spent_on_a_closed_day_clashes_today(
    retry: bool, big_cards: bool, workers: int
) -> None:
    day, first, second = two_days(3, retry, big_cards)
    one = settle(first, day.registry, workers=workers)
    assert (one.outcome == BOOKED).all()
    if not retry:  # (the retried day-1 batch holds the cloned records themselves)
        alone = settle(second, day.registry, workers=workers)
        assert not (alone.alerts["code"] == Alert.CARD_COUNTER_CLASH).any()
    two = settle(second, day.registry, workers=workers, booked_before=index_of(first, one))
    clash = two.alerts[two.alerts["code"] == Alert.CARD_COUNTER_CLASH]
    n = len(day.log.batches)
    targets = [int(rows_of(second, b)[0]) for b in (0, n - 1 - n // 2)]
    assert sorted(clash["row"].tolist()) == sorted(targets)
    for a in clash:
        record = second.records[a["row"]]
        assert a["card_id"] == np.int64(record["card_id"]).astype(np.uint64).view(np.int64)
        assert a["first"] == a["last"] == record["card_counter"]
        assert a["terminal_id"] == record["terminal_id"]
    assert (two.outcome[targets] == BOOKED).all()  # an alert, not a rejection


def close_two_days(tmp_path: Path, between: Callable[[Path], None] = lambda db: None) -> list:
    """Close two_days(4) in a ledger, calling `between` on its database after day 1; return
    each day's summary and alerts."""
    day, first, second = two_days(4, retry=False, big_cards=False)
    day.registry.save(tmp_path / "keys.json")
    end = int(day.log.batches["uploaded_ms"].max())
    out = []
    for k, log in enumerate((first, second), start=1):
        write_log(tmp_path / f"day{k}", log)
        inputs = DayInputs(
            tmp_path / f"day{k}", tmp_path / "keys.json", day.registry, FeeSchedule(), end + k
        )
        summary = close_day(tmp_path / "ledger", inputs)
        report = tmp_path / "ledger" / "days" / f"{k:04d}"
        out.append((summary["ledger"], pd.read_parquet(report / "alerts.parquet")))
        if k == 1:
            between(tmp_path / "ledger" / "ledger.sqlite")
    return out


def test_the_ledger_remembers_card_counters(tmp_path: Path) -> None:
    (one, alerts_1), (two, alerts_2) = close_two_days(tmp_path)
    assert not (alerts_1["alert"] == "CARD_COUNTER_CLASH").any()
    assert (alerts_2["alert"] == "CARD_COUNTER_CLASH").sum() == 2
    assert one["cross_day_checks_from_day"] == two["cross_day_checks_from_day"] == 1
    assert one["chain_checks_from_day"] == two["chain_checks_from_day"] == 1


def as_older_ledger(schema: int) -> Callable[[Path], None]:
    """Turn a ledger's database back into what cardsim wrote at `schema` (1: no card
    counters or batch serials, 2: no batch digests)."""
    tables = {1: ["booked_cards", "booked_batches", "booked_chains"], 2: ["booked_chains"]}
    meta = {1: "%_checks_from_day", 2: "chain_checks_from_day"}

    def older(path: Path) -> None:
        with closing(sqlite3.connect(path)) as db, db:
            for table in tables[schema]:
                db.execute(f"DROP TABLE {table}")
            db.execute("DELETE FROM meta WHERE key LIKE ?", (meta[schema],))
            db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema'", (f"cardsim.ledger/{schema}",)
            )

    return older


def test_a_ledger_made_before_card_counters_says_from_which_day(tmp_path: Path) -> None:
    _, (two, alerts_2) = close_two_days(tmp_path, as_older_ledger(1))
    assert two["cross_day_checks_from_day"] == 2  # day 1's counters and serials were never kept
    assert two["chain_checks_from_day"] == 2
    assert not (alerts_2["alert"] == "CARD_COUNTER_CLASH").any()
    with closing(sqlite3.connect(tmp_path / "ledger" / "ledger.sqlite")) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (
            "cardsim.ledger/3",
        )
        for table in ("booked_cards", "booked_batches", "booked_chains"):
            assert db.execute(f"SELECT day FROM {table}").fetchall() == [(2,)]


def test_a_ledger_made_before_batch_digests_says_from_which_day(tmp_path: Path) -> None:
    _, (two, alerts_2) = close_two_days(tmp_path, as_older_ledger(2))
    assert (two["cross_day_checks_from_day"], two["chain_checks_from_day"]) == (1, 2)
    assert (alerts_2["alert"] == "CARD_COUNTER_CLASH").sum() == 2  # counters were kept
    with closing(sqlite3.connect(tmp_path / "ledger" / "ledger.sqlite")) as db:
        assert db.execute("SELECT day FROM booked_chains").fetchall() == [(2,)]
        assert db.execute("SELECT count(*) FROM booked_cards").fetchone() == (2,)


@pytest.mark.parametrize("seed", [5, 6, 7])
@pytest.mark.parametrize("late_share", [0.2, 0.5])
def test_counters_a_closed_day_booked_are_not_gaps_today(seed: int, late_share: float) -> None:
    """Terminals that upload late book a card's earlier counters after a closed day booked its
    later ones: on a day without lost records, the late day has no counter gap."""
    day = small_day(seed, 300, 6, 10, repeat_fraction=0.0, tampered_batches=0, forged_records=0)
    whole = settle(day.log, day.registry)
    assert not (whole.alerts["code"] == Alert.CARD_COUNTER_GAP).any()
    n = len(day.log.batches)
    late = np.random.default_rng(seed).random(n) < late_share
    first = take_batches(day.log, np.flatnonzero(~late).tolist())
    second = take_batches(day.log, np.flatnonzero(late).tolist())
    one = settle(first, day.registry)
    assert (one.alerts["code"] == Alert.CARD_COUNTER_GAP).any()  # missing at day 1's close
    two = settle(second, day.registry, booked_before=index_of(first, one))
    assert (two.outcome == BOOKED).all()
    assert not np.isin(two.alerts["code"], [Alert.CARD_COUNTER_GAP, Alert.CARD_COUNTER_CLASH]).any()
    # Nor are the terminal and batch serials day 1 booked missing on day 2.
    serial_gaps = [Alert.TERMINAL_SERIAL_GAP, Alert.BATCH_SERIAL_GAP]
    assert np.isin(one.alerts["code"], serial_gaps).any()
    assert not np.isin(two.alerts["code"], serial_gaps).any()


def test_a_batch_lost_between_days_is_the_only_serial_gap_left() -> None:
    """One terminal's batches 0..5: day 1 holds 0 and 2, day 2 holds 1 (late), 4 and 5, and
    batch 3 never arrives. Day 2 reports exactly batch 3's serials missing, not batch 2's."""
    day = small_day(8, 600, 6, 10, repeat_fraction=0.0, tampered_batches=0, forged_records=0)
    batches = day.log.batches
    terminal = batches["terminal_id"][0]
    mine = np.flatnonzero(batches["terminal_id"] == terminal)
    mine = mine[np.argsort(batches["batch_serial"][mine])][:6].tolist()
    others = np.flatnonzero(batches["terminal_id"] != terminal).tolist()
    first = take_batches(day.log, [*others, mine[0], mine[2]])
    second = take_batches(day.log, [mine[1], mine[4], mine[5]])
    one = settle(first, day.registry)
    two = settle(second, day.registry, booked_before=index_of(first, one))
    lost = batches[mine[3]]
    gaps = two.alerts[
        np.isin(two.alerts["code"], [Alert.TERMINAL_SERIAL_GAP, Alert.BATCH_SERIAL_GAP])
    ]
    assert sorted(
        (int(a["code"]), int(a["terminal_id"]), int(a["first"]), int(a["last"])) for a in gaps
    ) == sorted(
        [
            (
                Alert.TERMINAL_SERIAL_GAP,
                int(terminal),
                int(lost["first_serial"]),
                int(lost["last_serial"]),
            ),
            (
                Alert.BATCH_SERIAL_GAP,
                int(terminal),
                int(lost["batch_serial"]),
                int(lost["batch_serial"]),
            ),
        ]
    )
    alone = settle(second, day.registry)  # without the closed day, batches 2 and 3 look lost
    assert len(alone.alerts[np.isin(alone.alerts["code"], [Alert.BATCH_SERIAL_GAP])]) == 1
    assert (
        alone.alerts[alone.alerts["code"] == Alert.BATCH_SERIAL_GAP]["first"][0]
        < lost["batch_serial"]
    )


def test_a_closed_days_batch_of_forged_records_is_not_missing_later() -> None:
    """Batch 2 of a terminal arrived on day 1 with every record forged (accepted, nothing
    booked); batches 1 and 3 arrive on day 2: nothing between them is missing."""
    day = small_day(8, 600, 6, 10, repeat_fraction=0.0, tampered_batches=0, forged_records=0)
    batches = day.log.batches
    terminal = batches["terminal_id"][0]
    mine = np.flatnonzero(batches["terminal_id"] == terminal)
    mine = mine[np.argsort(batches["batch_serial"][mine])][:4].tolist()
    for row in rows_of(day.log, mine[2]).tolist():
        forge(day, row)
    others = np.flatnonzero(batches["terminal_id"] != terminal).tolist()
    first = take_batches(day.log, [*others, mine[2]])
    one = settle(first, day.registry)
    assert not (one.outcome[-len(rows_of(day.log, mine[2])) :] == BOOKED).any()
    second = take_batches(day.log, [mine[1], mine[3]])
    two = settle(second, day.registry, booked_before=index_of(first, one))
    serial_gaps = [Alert.TERMINAL_SERIAL_GAP, Alert.BATCH_SERIAL_GAP]
    assert not np.isin(two.alerts["code"], serial_gaps).any()
    assert np.isin(settle(second, day.registry).alerts["code"], serial_gaps).sum() == 2


@pytest.mark.parametrize("terminal", [1, 3_000_001, 2**32 - 1])
def test_gaps_are_cut_for_any_terminal_id(terminal: int) -> None:
    closed = BookedIndex.of_days(
        [(np.array([terminal << 32 | 21], np.uint64), np.zeros(1, np.uint64))],
        None,
        [np.array([terminal << 32 | 7], np.uint64)],
        [np.array([terminal << 32 | 23], np.uint64)],
    )
    alerts = [
        (Alert.BATCH_SERIAL_GAP, terminal, -1, 7, 8, -1, -1),
        (Alert.TERMINAL_SERIAL_GAP, terminal, -1, 20, 24, -1, -1),
        (Alert.FORGED_RECORD, terminal, 5, 1, 1, 0, 0),
    ]
    assert sorted(gaps_left(alerts, closed)) == sorted(
        [
            (Alert.BATCH_SERIAL_GAP, terminal, -1, 8, 8, -1, -1),
            (Alert.TERMINAL_SERIAL_GAP, terminal, -1, 20, 20, -1, -1),
            (Alert.TERMINAL_SERIAL_GAP, terminal, -1, 22, 22, -1, -1),
            (Alert.TERMINAL_SERIAL_GAP, terminal, -1, 24, 24, -1, -1),
            (Alert.FORGED_RECORD, terminal, 5, 1, 1, 0, 0),
        ]
    )


def test_a_batch_lost_at_the_boundary_of_two_days_is_reported_once() -> None:
    """Day 1 holds a terminal's batches 0 and 1, batch 2 never arrives, day 2 holds 3 and 4:
    day 1 cannot see the loss, day 2 reports it; a day 3 with batch 5 does not repeat it."""
    day = small_day(8, 600, 6, 10, repeat_fraction=0.0, tampered_batches=0, forged_records=0)
    batches = day.log.batches
    terminal = batches["terminal_id"][0]
    mine = np.flatnonzero(batches["terminal_id"] == terminal)
    mine = mine[np.argsort(batches["batch_serial"][mine])][:6].tolist()
    serial_gaps = [Alert.TERMINAL_SERIAL_GAP, Alert.BATCH_SERIAL_GAP]

    def gaps(result: Settlement) -> list[tuple[int, int, int]]:
        found = result.alerts[np.isin(result.alerts["code"], serial_gaps)]
        return sorted((int(a["code"]), int(a["first"]), int(a["last"])) for a in found)

    first = take_batches(day.log, mine[:2])
    one = settle(first, day.registry)
    assert gaps(one) == []
    second = take_batches(day.log, mine[3:5])
    two = settle(second, day.registry, booked_before=index_of(first, one))
    lost = batches[mine[2]]
    assert gaps(two) == sorted(
        [
            (Alert.TERMINAL_SERIAL_GAP, int(lost["first_serial"]), int(lost["last_serial"])),
            (Alert.BATCH_SERIAL_GAP, int(lost["batch_serial"]), int(lost["batch_serial"])),
        ]
    )
    both = BookedIndex.of_days(
        [
            (index_of(log, r).rids, index_of(log, r).tacs)
            for log, r in ((first, one), (second, two))
        ],
        None,
        [index_of(log, r).batch_keys for log, r in ((first, one), (second, two))],
    )
    third = take_batches(day.log, mine[5:6])
    assert gaps(settle(third, day.registry, booked_before=both)) == []
