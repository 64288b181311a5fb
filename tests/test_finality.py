"""Settlement finality: a closed day's report never changes; late records, re-uploads and
corrections land in the open day; every record is booked exactly once across days."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cardsim.errors import InputError
from cardsim.ledger.clearing_days import ClearingLedger
from cardsim.ledger.day_close import DayInputs, close_day
from cardsim.records.codes import Participant
from cardsim.records.keys import load_registry
from cardsim.records.log import RecordLog
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.kernel import settle
from cardsim.settlement.positions import flow_sums, net_positions
from cardsim.settlement.reasons import BOOKED, Alert, Reason
from cardsim.settlement.reference import reference_settle
from cardsim.synthetic import SyntheticDay
from tests.conftest import small_day
from tests.ledger_days import Days, build_days, index_of, rid
from tests.mutations import clone, resend_records, rows_of, take_batches

NO_FEES = FeeSchedule({}, {})


def cardsim(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardsim", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def close(
    days: Days, day: int, *extra: str | Path, ledger: Path | None = None, cutoff: int = 0
) -> subprocess.CompletedProcess[str]:
    """`cardsim settle dayN --ledger ...` with day N's log and cut-off."""
    return cardsim(
        "settle",
        days.root / f"day{day}",
        "--keys",
        days.root / "keys.json",
        "--ledger",
        ledger or days.root / "ledger",
        "--cutoff-ms",
        str(cutoff or days.cutoffs[day - 1]),
        *extra,
    )


def close_here(
    days: Days,
    day: int,
    corrections: Path | None = None,
    ledger: Path | None = None,
    cutoff: int = 0,
    day_no: int | None = None,
) -> tuple[dict, list[str]]:
    """What `close` does, in this process (no interpreter start-up): the summary and what the
    command would print on stderr."""
    keys = days.root / "keys.json"
    inputs = DayInputs(
        days.root / f"day{day}",
        keys,
        load_registry(keys),
        FeeSchedule(),
        cutoff or days.cutoffs[day - 1],
        corrections,
        day_no,
    )
    said: list[str] = []
    return close_day(ledger or days.root / "ledger", inputs, say=said.append), said


def report(days: Days, day: int) -> Path:
    return days.root / "ledger" / "days" / f"{day:04d}"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def recorded_hash(days: Days, day: int) -> str:
    with closing(sqlite3.connect(days.root / "ledger" / "ledger.sqlite")) as db:
        row = db.execute("SELECT report_sha256 FROM day WHERE day = ?", (day,)).fetchone()
    return str(row[0])


def booked(days: Days, day: int) -> pd.DataFrame:
    return pd.read_parquet(report(days, day) / "booked.parquet")


def summary(days: Days, day: int) -> dict:
    return dict(json.loads((report(days, day) / "summary.json").read_text()))


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Days:
    """Day 1 closed; day 2 closed with late records, re-uploads and corrections."""
    days = build_days(tmp_path_factory.mktemp("days"))
    done = close(days, 1)
    assert done.returncode == 0, done.stderr
    days.day1_files = snapshot(report(days, 1))
    picks = booked(days, 1).iloc[[3, 40]]
    ids = list(zip(picks.terminal_id, picks.terminal_serial, strict=True))
    lines = ["terminal_id,terminal_serial,reference"]
    lines += [f"{t},{s},dispute-{i}" for i, (t, s) in enumerate(ids)]
    lines += [f"{ids[0][0]},{ids[0][1]},filed twice", "9999,1,"]
    (days.root / "corrections.csv").write_text("\n".join(lines) + "\n")
    days.reversed = picks
    done = close(days, 2, "--corrections", days.root / "corrections.csv")
    assert done.returncode == 0, done.stderr
    return days


def test_a_closed_days_report_never_changes(days: Days) -> None:
    assert snapshot(report(days, 1)) == days.day1_files
    sums = (report(days, 1) / "SHA256SUMS").read_bytes()
    assert hashlib.sha256(sums).hexdigest() == recorded_hash(days, 1)
    listed = {
        name: digest for digest, name in (ln.split("  ") for ln in sums.decode().splitlines())
    }
    assert days.day1_files is not None
    assert set(listed) == set(days.day1_files) - {"SHA256SUMS"}
    for name, digest in listed.items():
        assert hashlib.sha256(days.day1_files[name]).hexdigest() == digest
    assert summary(days, 2)["ledger"]["previous_report_sha256"] == recorded_hash(days, 1)


def test_a_closed_day_is_never_closed_again(days: Days) -> None:
    refused = cardsim(
        "settle", days.root / "day2", "--keys", days.root / "keys.json", "--ledger",
        days.root / "ledger", "--cutoff-ms", str(days.cutoffs[0]), "--day", "1",
    )  # fmt: skip
    assert refused.returncode == 2
    assert "day 1 is closed" in refused.stderr and "Traceback" not in refused.stderr
    # The very same command again, with --day or without: answered from the report.
    doc, said = close_here(days, 1, day_no=1)
    assert doc == summary(days, 1) and "already closed" in said[0]
    doc, said = close_here(days, 2, days.root / "corrections.csv")
    assert doc == summary(days, 2) and "already closed" in said[0]
    assert snapshot(report(days, 1)) == days.day1_files
    with pytest.raises(InputError, match="must be later"):
        close_here(days, 2, cutoff=days.cutoffs[0] - 1)
    with pytest.raises(InputError, match="day 5 is not open yet"):
        close_here(days, 2, day_no=5)


def test_late_records_and_uploads_again_land_in_the_open_day(days: Days) -> None:
    first, second = summary(days, 1), summary(days, 2)
    assert second["ledger"]["late_records_booked"] == days.late_records > 0
    assert second["ledger"]["carried_in_records"] == first["records"]["pending"] > 0
    assert second["ledger"]["rejected_as_booked_on_closed_day"] == days.again_records
    reasons = pd.read_parquet(report(days, 2) / "rejects.parquet")["reason_name"].value_counts()
    assert reasons["DUPLICATE_RECORD"] == days.again_records - 1
    assert reasons["RECORD_CONFLICT"] == 1
    alerts = pd.read_parquet(report(days, 2) / "alerts.parquet")
    assert (alerts["alert"] == "RECORD_CONFLICT").sum() == 1
    on_1, on_2 = (rid(b.terminal_id, b.terminal_serial) for b in (booked(days, 1), booked(days, 2)))
    assert not np.intersect1d(on_1, on_2).size, "a record booked on two days"


def test_corrections_are_reversing_entries_in_the_open_day(days: Days) -> None:
    table = pd.read_csv(report(days, 2) / "reversals.csv")
    assert list(table["outcome_name"]) == ["REVERSED", "REVERSED", "REPEATED", "NOT_BOOKED"]
    done = table[table["outcome_name"] == "REVERSED"].reset_index(drop=True)
    assert days.reversed is not None
    original = days.reversed.reset_index(drop=True)
    for name in ("terminal_id", "terminal_serial", "card_id", "payee", "kind", "domain"):
        assert list(done[name]) == list(original[name]), name
    assert list(done["amount_fen"]) == list(original["amount_fen"])
    assert list(done["reversal_fen"]) == list(-original["amount_fen"])
    assert list(done["original_day"]) == [1, 1]
    assert list(done["reference"]) == ["dispute-0", "dispute-1"]
    assert summary(days, 2)["ledger"]["reversal_fen"] == -int(original["amount_fen"].sum())


def test_money_is_conserved_across_days(days: Days) -> None:
    gross = []
    for day in (1, 2):
        positions = pd.read_csv(report(days, day) / "settlement.csv").set_index("participant")
        assert positions["net_fen"].sum() == 0
        assert (positions["received_fen"] - positions["paid_fen"] - positions["fee_fen"]).equals(
            positions["net_fen"]
        )
        gross.append(positions["received_fen"] - positions["paid_fen"])
    got = gross[0].add(gross[1], fill_value=0)
    assert days.reversed is not None
    both = pd.concat([booked(days, 1), booked(days, 2)])
    undone = rid(both.terminal_id, both.terminal_serial)
    undone = np.isin(undone, rid(days.reversed.terminal_id, days.reversed.terminal_serial))
    kept = both[~undone]
    flows = flow_sums(*(kept[c].to_numpy() for c in ("payee", "kind", "domain", "amount_fen")))
    expected = pd.DataFrame(net_positions(flows, NO_FEES)).set_index("participant")
    want = (expected["received_fen"] - expected["paid_fen"]).reindex(got.index, fill_value=0)
    assert got.astype(np.int64).equals(want.astype(np.int64))
    assert got.loc[int(Participant.ISSUER_FLOAT)] != 0


def test_every_genuine_record_is_booked_exactly_once_over_three_days(days: Days) -> None:
    assert days.reversed is not None
    again = days.reversed.iloc[[0]][["terminal_id", "terminal_serial"]]
    again.to_csv(days.root / "corrections-3.csv", index=False)
    third, _ = close_here(days, 3, days.root / "corrections-3.csv")
    assert third == summary(days, 3)
    assert third["ledger"]["carried_in_records"] == summary(days, 2)["records"]["pending"] > 0
    assert third["records"]["pending"] == 0
    assert third["ledger"]["rejected_as_booked_on_closed_day"] == third["records"]["rejected"] > 0
    table = pd.read_csv(report(days, 3) / "reversals.csv")
    assert list(table["outcome_name"]) == ["ALREADY_REVERSED"]
    ids = np.concatenate(
        [rid(b.terminal_id, b.terminal_serial) for b in (booked(days, d) for d in (1, 2, 3))]
    )
    assert len(ids) == len(np.unique(ids)), "a record booked twice"
    np.testing.assert_array_equal(np.sort(ids), days.genuine)
    assert snapshot(report(days, 1)) == days.day1_files
    fourth, _ = close_here(days, 3, cutoff=days.cutoffs[2] + 1)  # day 4: only uploads again
    assert fourth["ledger"]["day"] == 4
    assert fourth["records"]["booked"] == 0 and fourth["booked_received_fen"] == 0


def test_a_changed_closed_report_is_caught(days: Days, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    shutil.copytree(days.root / "ledger", ledger)
    target = ledger / "days" / "0001" / "booked.parquet"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 1
    target.write_bytes(bytes(raw))
    other = booked(days, 1).iloc[[10]][["terminal_id", "terminal_serial"]]
    other.to_csv(tmp_path / "c.csv", index=False)
    later = days.cutoffs[2] + 86_400_000
    with pytest.raises(InputError, match="changed since day 1 closed"):
        close_here(days, 3, tmp_path / "c.csv", ledger=ledger, cutoff=later)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_days_book_what_one_log_of_both_days_books(seed: int) -> None:
    """Closing day 1, then day 2 against day 1's bookings, books exactly the records the
    reference settler books from both days' uploads as one log (every record once)."""
    day: SyntheticDay = small_day(seed=seed, records=400, repeat_fraction=0.1)
    n = len(day.log.batches)
    # Cloned cards: day-2 records spending counters that day-1 records (or day-2 ones) spent.
    whole = settle(day.log, day.registry).outcome == BOOKED
    good = [b for b in range(n) if whole[rows_of(day.log, b)].all()]
    early, late = [b for b in good if b < n // 2], [b for b in good if b >= n // 2]
    for a, b in ((early[0], late[0]), (early[1], late[1]), (late[2], late[3])):
        clone(day, int(rows_of(day.log, a)[0]), int(rows_of(day.log, b)[-1]))
    resend_records(day, 2, alter=False)  # batches n and n + 1: day-1 records in new batches
    resend_records(day, 5, alter=True)
    log = day.log
    first = take_batches(log, list(range(n // 2)))
    second = take_batches(log, [*range(n // 2, n + 2), 0, 1, 7])  # day-1 batches retried
    one = settle(first, day.registry)
    two = settle(second, day.registry, booked_before=index_of(first, one))
    both: RecordLog = first.concat(second)
    reference = reference_settle(both, day.registry, FeeSchedule())
    is_booked = reference.outcome == BOOKED
    np.testing.assert_array_equal(one.outcome == BOOKED, is_booked[: len(first.records)])
    np.testing.assert_array_equal(two.outcome == BOOKED, is_booked[len(first.records) :])
    assert np.count_nonzero(np.isin(two.outcome, [Reason.DUPLICATE_RECORD])) > 0
    assert np.count_nonzero(np.isin(two.outcome, [Reason.RECORD_CONFLICT])) > 0
    gross = [p["received_fen"].sum() for p in (one.positions, two.positions)]
    assert sum(gross) == reference.positions["received_fen"].sum()
    # Clones are caught across the days as within one log, naming the same records.
    days = clashes(one.alerts, 0, 0) | clashes(two.alerts, len(first.records), len(first.batches))
    assert days == clashes(reference.alerts, 0, 0)
    day1 = first.records[one.booked]
    spent = set(zip(day1["card_id"].tolist(), day1["card_counter"].tolist(), strict=True))
    assert any((card, counter) in spent for _, card, counter, *_ in clashes(two.alerts, 0, 0))


def clashes(alerts: np.ndarray, row: int, batch_row: int) -> set[tuple[int, ...]]:
    """CARD_COUNTER_CLASH alerts, their rows moved on by `row` and `batch_row`."""
    mine = alerts[alerts["code"] == Alert.CARD_COUNTER_CLASH]
    return {
        (
            int(a["terminal_id"]),
            int(a["card_id"]),
            int(a["first"]),
            int(a["batch_row"]) + batch_row,
            int(a["row"]) + row,
        )
        for a in mine
    }


class Crash(Exception):
    """Stands for the process dying between the ledger's commit and the report's rename."""


def test_a_close_cut_short_after_its_commit_is_finished_on_reopening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = build_days(tmp_path)
    keys = days.root / "keys.json"
    inputs = DayInputs(
        days.root / "day1", keys, load_registry(keys), FeeSchedule(), days.cutoffs[0]
    )
    folder = tmp_path / "ledger"

    def die(self: ClearingLedger, closed: object) -> None:
        self.db.close()
        raise Crash

    monkeypatch.setattr(ClearingLedger, "_put_in_place", die)
    with pytest.raises(Crash):
        close_day(folder, inputs)
    assert not (folder / "days" / "0001").exists(), "a report visible before its rename"
    assert (folder / ".journal-0001").exists()
    monkeypatch.undo()
    ledger = ClearingLedger.open(folder)
    closed = ledger.closed(1)
    assert closed is not None and closed.carried_out > 0
    sums = folder / "days" / "0001" / "SHA256SUMS"
    assert hashlib.sha256(sums.read_bytes()).hexdigest() == closed.report_sha256
    assert (folder / "carry" / "0001" / "records.parquet").exists()
    assert not (folder / ".journal-0001").exists()
    assert ledger.next_day() == 2
    ledger.close()
