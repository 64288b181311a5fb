"""The hash chain of a terminal's batches across clearing days: a batch whose predecessor a
closed day accepted must name that batch's digest (else BATCH_CHAIN_BREAK), and a batch under
a serial a closed day accepted must be the same batch (else BATCH_CONFLICT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsim.ledger.day_close import DayInputs, close_day
from cardsim.records.batch import BATCH_DTYPE
from cardsim.records.keys import compute_tacs
from cardsim.records.log import RecordLog, write_log
from cardsim.settlement.batches import serial_groups
from cardsim.settlement.booked_index import BookedIndex, day_chains, links_to_closed_days
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.kernel import settle
from cardsim.settlement.reasons import Alert
from cardsim.settlement.result import Settlement
from cardsim.synthetic import SyntheticDay
from tests.conftest import small_day
from tests.ledger_days import index_of
from tests.mutations import rows_of, take_batches

LINKS = (Alert.BATCH_CHAIN_BREAK, Alert.BATCH_CONFLICT)


def digest(k: int) -> np.ndarray:
    return np.full(32, k, np.uint8)


batch = st.tuples(
    st.integers(1, 2),  # terminal
    st.integers(0, 4),  # batch serial
    st.integers(0, 2),  # its digest
    st.integers(0, 2),  # the digest it names as its predecessor's
    st.booleans(),  # accepted today
)
closed_batch = st.tuples(
    st.integers(1, 2),  # terminal
    st.integers(0, 4),  # batch serial
    st.integers(0, 2),  # its digest
    st.integers(0, 2),  # the digest it names as its predecessor's
    st.integers(1, 2),  # the closed day that accepted it
)


def table(rows: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """A batch table of (terminal, serial, digest, prev_digest, ...) rows, and the digests."""
    batches = np.zeros(len(rows), BATCH_DTYPE)
    digests = np.zeros((len(rows), 32), np.uint8)
    for b, (t, s, d, p, *_) in enumerate(rows):
        batches[b]["terminal_id"], batches[b]["batch_serial"] = t, s
        batches[b]["prev_digest"], digests[b] = digest(p), digest(d)
    return batches, digests


@settings(max_examples=500, deadline=None)
@given(st.lists(batch, max_size=12), st.lists(closed_batch, max_size=10))
def test_links_agree_with_a_plain_reading(today: list, closed: list) -> None:
    """Two closed days and today's batches, against the rule read one batch at a time."""
    chains, heads = [], []
    for day in (1, 2):
        kept, digests = table([c for c in closed if c[4] == day])
        day_chain, day_heads = day_chains(kept, digests)
        chains += day_chain
        heads += day_heads
    none = np.empty(0, np.uint64)
    index = BookedIndex.of_days([(none, none)], chains=chains, heads=heads)
    batches, digests = table(today)
    groups = serial_groups(batches, np.array([a for *_, a in today], bool), digests)
    found = links_to_closed_days(batches, groups, digests, index)
    assert sorted(found) == sorted(_plain_links(today, closed))


def _plain_links(today: list, closed: list) -> list[tuple]:
    """The rule read literally, one batch at a time."""
    held: dict[tuple[int, int], set[int]] = {}
    waits: dict[tuple[int, int], set[int]] = {}  # closed batches whose day lacked their predecessor
    for t, s, d, p, day in closed:
        held.setdefault((t, s), set()).add(d)
        if s > 0 and not any(c[:2] == (t, s - 1) and c[4] == day for c in closed):
            waits.setdefault((t, s), set()).add(p)
    mine: dict[tuple[int, int], list[int]] = {}
    for b, (t, s, *_rest, accepted) in enumerate(today):
        if accepted:
            mine.setdefault((t, s), []).append(b)
    out: list[tuple] = []
    for (t, s), rows in mine.items():
        head = rows[0]
        agree = len({today[b][2] for b in rows}) == 1  # else a conflict within the day
        if agree and (t, s) in held and today[head][2] not in held[(t, s)]:
            out.append((Alert.BATCH_CONFLICT, t, -1, s, s, -1, -1))
        before = (t, s - 1)
        linked = before not in held or today[head][3] in held[before]
        if s > 0 and before not in mine and not linked:
            out.append((Alert.BATCH_CHAIN_BREAK, t, -1, s, s, head, -1))
        after = (t, s + 1)  # a closed batch still waiting for this one
        waiting = after in waits and (t, s) not in held and after not in mine
        if agree and waiting and today[head][2] not in waits[after]:
            out.append((Alert.BATCH_CHAIN_BREAK, t, -1, s + 1, s + 1, -1, -1))
    return out


def split_day(seed: int) -> tuple[SyntheticDay, list[int], list[int]]:
    """A clean day cut in two: each terminal's batches with serials below its median on day
    1, the rest on day 2 (batch rows of the whole day)."""
    day = small_day(seed, 900, 8, 15, repeat_fraction=0.0, tampered_batches=0, forged_records=0)
    batches = day.log.batches
    first, second = [], []
    for t in np.unique(batches["terminal_id"]).tolist():
        mine = np.flatnonzero(batches["terminal_id"] == t)
        mine = mine[np.argsort(batches["batch_serial"][mine])].tolist()
        first += mine[: len(mine) // 2]
        second += mine[len(mine) // 2 :]
    return day, first, second


def links(result: Settlement) -> list[tuple[int, int, int, int]]:
    found = result.alerts[np.isin(result.alerts["code"], LINKS)]
    return sorted(
        (int(a["code"]), int(a["terminal_id"]), int(a["first"]), int(a["batch_row"])) for a in found
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_broken_link_at_the_day_boundary_is_caught(workers: int) -> None:
    """Day 2's first batch of a terminal names another predecessor (re-signed, so its own
    signature holds): only a ledger that kept day 1's digests can see that link break. (The
    altered batch has another digest, so the day's own check sees the next link break.)"""
    day, first, second = split_day(3)
    b = second[0]
    day.log.batches["prev_digest"][b, 0] ^= 0xFF
    day.resign(b)
    one_log, two_log = take_batches(day.log, first), take_batches(day.log, second)
    one = settle(one_log, day.registry, workers=workers)
    two = settle(two_log, day.registry, workers=workers, booked_before=index_of(one_log, one))
    tid, serial = (int(day.log.batches[b][f]) for f in ("terminal_id", "batch_serial"))
    within_day = (Alert.BATCH_CHAIN_BREAK, tid, serial + 1, 1)
    assert links(two) == [(Alert.BATCH_CHAIN_BREAK, tid, serial, 0), within_day]
    assert links(settle(two_log, day.registry, workers=workers)) == [within_day]


def test_a_clean_split_and_a_retry_chain_without_alerts() -> None:
    day, first, second = split_day(4)
    one_log = take_batches(day.log, first)
    one = settle(one_log, day.registry)
    # Day 2 also gets day 1's last batch of every terminal again (acknowledgements lost).
    batches = day.log.batches
    last = [
        max(
            (b for b in first if batches["terminal_id"][b] == t),
            key=lambda b: batches["batch_serial"][b],
        )
        for t in np.unique(batches["terminal_id"][first]).tolist()
    ]
    retried = take_batches(day.log, [*last, *second])
    two = settle(retried, day.registry, booked_before=index_of(one_log, one))
    assert links(two) == []
    assert len(two.alerts) == 0


def test_another_batch_under_a_closed_days_serial_is_a_conflict() -> None:
    """A terminal signs a second, different batch under a serial day 1 already accepted."""
    day, first, second = split_day(5)
    one_log = take_batches(day.log, first)
    one = settle(one_log, day.registry)
    twin = take_batches(day.log, [first[0]])
    twin.records["balance_after_fen"][0] += 1
    twin.records["tac"] = compute_tacs(day.registry.master_key, twin.records)
    day.log = day.log.concat(twin)
    day.resign(len(day.log.batches) - 1)
    two_log = take_batches(day.log, [*second, len(day.log.batches) - 1])
    two = settle(two_log, day.registry, booked_before=index_of(one_log, one))
    tid, serial = (int(twin.batches[0][f]) for f in ("terminal_id", "batch_serial"))
    assert links(two) == [(Alert.BATCH_CONFLICT, tid, serial, -1)]


def test_the_ledger_keeps_digests_and_checks_the_next_day(tmp_path: Path) -> None:
    day, first, second = split_day(6)
    b = second[0]
    day.log.batches["prev_digest"][b, 0] ^= 0xFF
    day.resign(b)
    day.registry.save(tmp_path / "keys.json")
    end = int(day.log.batches["uploaded_ms"].max())
    for k, rows in enumerate((first, second), start=1):
        log: RecordLog = take_batches(day.log, rows)
        write_log(tmp_path / f"day{k}", log)
        inputs = DayInputs(
            tmp_path / f"day{k}", tmp_path / "keys.json", day.registry, FeeSchedule(), end + k
        )
        summary = close_day(tmp_path / "ledger", inputs)
        assert summary["ledger"]["chain_checks_from_day"] == 1
    alerts = pd.read_parquet(tmp_path / "ledger" / "days" / "0002" / "alerts.parquet")
    broken = alerts[alerts["alert"] == "BATCH_CHAIN_BREAK"]
    tid, serial = (int(day.log.batches[b][f]) for f in ("terminal_id", "batch_serial"))
    assert broken[["terminal_id", "first"]].values.tolist() == [[tid, serial], [tid, serial + 1]]
    assert not (alerts["alert"] == "BATCH_CONFLICT").any()


@pytest.mark.parametrize("altered", [False, True])
def test_a_late_batch_must_be_the_one_its_closed_successor_names(altered: bool) -> None:
    """Day 1 accepted a terminal's batches s-1 and s+1; s arrives on day 2. Only if it is
    another batch than the one s+1 names is the link s -> s+1 broken (reported at s+1, a
    closed day's batch, so with no batch row of today's input)."""
    day, first, _ = split_day(7)
    late = first[2]
    if altered:  # the terminal (or whoever holds its key) signs another batch s
        rows = rows_of(day.log, late)
        day.log.records["balance_after_fen"][rows[0]] += 1
        day.log.records["tac"][rows] = compute_tacs(day.registry.master_key, day.log.records[rows])
        day.resign(late)
    one_log = take_batches(day.log, [b for b in first if b != late])
    one = settle(one_log, day.registry)
    two = settle(take_batches(day.log, [late]), day.registry, booked_before=index_of(one_log, one))
    tid, serial = (int(day.log.batches[late][f]) for f in ("terminal_id", "batch_serial"))
    assert links(two) == ([(Alert.BATCH_CHAIN_BREAK, tid, serial + 1, -1)] if altered else [])
