"""Closing a clearing day: settle what arrived, book reversals, write the final report.

The day's input is the records carried from the previous day's cut-off followed by the day's
log. The day takes every batch received up to its cut-off (the clearing centre's receipt
clock, `uploaded_ms`; never the record's own `time_ms`, which a terminal's clock wrote), so a
batch received for an already closed day is booked today: late, never rewriting the closed
day. Records any closed day booked are rejected as duplicates (`BookedIndex`). The report is
hashed, the ledger commits the hash, and the day is final.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardsim.errors import InputError
from cardsim.ledger.carry import ChainedSource, pending_log
from cardsim.ledger.clearing_days import ClearingLedger, ClosedDay, report_sha256
from cardsim.ledger.corrections import (
    check_corrections_file,
    read_corrections,
    resolve,
    reversal_flows,
    reversed_ids,
)
from cardsim.ledger.durable import (
    SUMS_FILE,
    CrashHook,
    file_sha256,
    fingerprint,
    fsync_tree,
    manifest,
)
from cardsim.ledger.settle_journal import NEW, SettleJournal
from cardsim.records.keys import KeyRegistry
from cardsim.records.log import BATCHES_FILE, RECORDS_FILE, LogReader, RecordLog, write_log
from cardsim.results.settlement_files import write_settlement
from cardsim.settlement.batches import batch_keys
from cardsim.settlement.booked_index import BookedIndex, day_chains
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.grouping import Sums, group_sums
from cardsim.settlement.kernel import settle
from cardsim.settlement.positions import flow_sums, net_positions
from cardsim.settlement.reasons import PENDING, RECORD_REASONS, Reason
from cardsim.settlement.result import Settlement
from cardsim.settlement.source import ChunkSource, fetch

DAY_SCHEMA = "cardsim.clearing-day/1"
REVERSALS_FILE = "reversals.csv"


@dataclass(frozen=True)
class DayInputs:
    """What one `cardsim settle LOG --ledger DIR` closes the day from."""

    log: Path
    keys: Path
    registry: KeyRegistry
    fees: FeeSchedule
    cutoff_ms: int | None
    corrections: Path | None = None
    day: int | None = None
    """The day the caller means to close; None: the open day."""
    workers: int = 1


def close_day(
    folder: Path,
    inputs: DayInputs,
    progress: Callable[[int], None] | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Close the ledger's open day; return the report's summary document."""
    if inputs.corrections is not None:
        check_corrections_file(inputs.corrections)
    hook = CrashHook.from_env()
    ledger = ClearingLedger.open(folder, hook)
    try:
        day = _which_day(ledger, inputs)
        last = ledger.closed(day - 1)
        fp = _fingerprint(inputs, day, last)
        if day < ledger.next_day():
            return _already_closed(ledger, day, fp, say)
        cutoff_ms = _cutoff(ledger, inputs, day, last)
        journal = SettleJournal.open(ledger.journal_path(day), fp, hook)
        if journal.note != NEW:
            say(f"journal {journal.path}: {journal.note}")
        try:
            doc = _settle_day(
                ledger, inputs, ClosedDay(day, cutoff_ms, "", fp, 0), journal, progress
            )
        except BaseException:
            journal.close()  # the next run resumes from it
            raise
        journal.remove()
        return doc
    finally:
        ledger.close()


def _settle_day(
    ledger: ClearingLedger,
    inputs: DayInputs,
    day: ClosedDay,
    journal: SettleJournal,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    """Settle the open day `day` (its hash and carry still blank), write its report and
    carry under temporary names, and commit the close."""
    last = ledger.closed(day.day - 1)
    source = _day_source(ledger, last, inputs.log)
    corrections = read_corrections(inputs.corrections) if inputs.corrections else None
    reversals = resolve(_no_corrections() if corrections is None else corrections, ledger)
    index = ledger.booked_index()
    result = settle(
        source,
        inputs.registry,
        inputs.fees,
        day.cutoff_ms,
        inputs.workers,
        progress,
        journal=journal,
        booked_before=index,
    )
    result = _with_reversals(result, source, reversal_flows(reversals), inputs.fees)
    report = ledger.partial(ledger.report_dir(day.day))
    extra = _ledger_block(day.day, day.cutoff_ms, last, source, result, index, reversals)
    extra["ledger"]["cross_day_checks_from_day"] = ledger.cross_day_checks_from()
    extra["ledger"]["chain_checks_from_day"] = ledger.chain_checks_from()
    doc = _write_report(
        report, result, source, reversals, {"log": str(inputs.log), **extra}, inputs.workers
    )
    carried = pending_log(source, result.outcome)
    _write_carry(ledger.partial(ledger.carry_dir(day.day)), carried)
    closed = dataclasses.replace(
        day, report_sha256=report_sha256(report), carried_out=len(carried.records)
    )
    ledger.commit_day(closed, _booked_ids(source, result), reversed_ids(reversals))
    return doc


def _which_day(ledger: ClearingLedger, inputs: DayInputs) -> int:
    """The day named by --day; without it the open day, unless this very command already
    closed the last day (a retry after a crash that came after the close)."""
    if inputs.day is not None:
        return inputs.day
    last = ledger.last()
    if (
        last is not None
        and _fingerprint(inputs, last.day, ledger.closed(last.day - 1)) == last.inputs
    ):
        return last.day
    return ledger.next_day()


def _cutoff(ledger: ClearingLedger, inputs: DayInputs, day: int, last: ClosedDay | None) -> int:
    """The open day's cut-off, once the day and its cut-off are known to be acceptable."""
    if day > ledger.next_day():
        raise InputError(
            ledger.folder, f"day {day} is not open yet: close day {ledger.next_day()} first"
        )
    if inputs.cutoff_ms is None:
        raise InputError(
            inputs.log,
            "a clearing day needs a cut-off: --cutoff-ms, or cutoff_ms in settlement-params.json",
        )
    if last is not None and inputs.cutoff_ms <= last.cutoff_ms:
        raise InputError(
            inputs.log,
            f"cut-off {inputs.cutoff_ms} must be later than day {last.day}'s ({last.cutoff_ms})",
        )
    return inputs.cutoff_ms


def _already_closed(
    ledger: ClearingLedger, day: int, fp: str, say: Callable[[str], None]
) -> dict[str, Any]:
    """A repeated close of a closed day is answered from its report; anything else is refused."""
    closed = ledger.closed(day)
    if closed is None:
        raise AssertionError(f"day {day} is before the open day but not closed")
    if closed.inputs != fp:
        raise InputError(
            ledger.folder,
            f"day {day} is closed (report sha256 {closed.report_sha256}); its report never "
            f"changes: records received for it now go to the open day, --day {ledger.next_day()}",
        )
    say(f"day {day} was already closed by this same command; its report is unchanged")
    return dict(json.loads(ledger.verified(day, "summary.json").read_text()))


def _fingerprint(inputs: DayInputs, day: int, last: ClosedDay | None) -> str:
    return fingerprint(
        {
            "schema": DAY_SCHEMA,
            "cardsim": version("cardsim"),
            "day": day,
            "previous_report_sha256": last.report_sha256 if last else None,
            "log": str(inputs.log),
            "records": file_sha256(inputs.log / RECORDS_FILE),
            "batches": file_sha256(inputs.log / BATCHES_FILE),
            "keys": file_sha256(inputs.keys),
            "corrections": file_sha256(inputs.corrections) if inputs.corrections else None,
            "cutoff_ms": inputs.cutoff_ms,
            "fees": inputs.fees.to_json(),
        }
    )


def _day_source(ledger: ClearingLedger, last: ClosedDay | None, log: Path) -> ChainedSource:
    parts: list[ChunkSource] = []
    if last is not None and last.carried_out:
        parts.append(LogReader(ledger.carry_dir(last.day)))
    parts.append(LogReader(log))
    return ChainedSource(parts)


def _no_corrections() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "line": pd.Series(dtype=np.int64),
            "terminal_id": pd.Series(dtype=np.int64),
            "terminal_serial": pd.Series(dtype=np.int64),
            "reference": pd.Series(dtype=str),
        }
    )


def _with_reversals(
    result: Settlement, source: ChunkSource, reversals: Sums, fees: FeeSchedule
) -> Settlement:
    """Net positions of the day's booked records plus its reversing entries."""
    booked = fetch(source, ["payee", "kind", "domain", "amount_fen"], result.booked)
    flows = flow_sums(
        booked["payee"].astype(np.uint32),
        booked["kind"].astype(np.uint8),
        booked["domain"].astype(np.uint8),
        booked["amount_fen"].astype(np.int64),
    )
    if not np.array_equal(net_positions(flows, fees), result.positions):
        raise AssertionError("booked records do not add up to the kernel's positions")
    both = group_sums(
        np.concatenate([flows.keys, reversals.keys]), np.concatenate([flows.fen, reversals.fen])
    )
    return dataclasses.replace(result, positions=net_positions(both, fees))


def _ledger_block(
    day: int,
    cutoff_ms: int,
    last: ClosedDay | None,
    source: ChainedSource,
    result: Settlement,
    index: BookedIndex,
    reversals: pd.DataFrame,
) -> dict[str, Any]:
    """What summary.json says about the day's place in the ledger."""
    carried_in = source.parts[0].rows if len(source.parts) > 1 else 0
    uploaded = source.batches["uploaded_ms"]
    booked_rows = fetch(source, ["batch_row"], result.booked)["batch_row"]
    late = int(np.count_nonzero(uploaded[booked_rows] <= last.cutoff_ms)) if last else 0
    again = np.flatnonzero(
        np.isin(result.outcome, [Reason.DUPLICATE_RECORD, Reason.RECORD_CONFLICT])
    )
    seen, _ = index.lookup(_rids(source, again)["rid"])
    done = reversals["outcome"] == 0
    return {
        "cutoff_ms": cutoff_ms,
        "ledger": {
            "day": day,
            "previous_cutoff_ms": last.cutoff_ms if last else None,
            "previous_report_sha256": last.report_sha256 if last else None,
            "carried_in_records": int(carried_in),
            "late_records_booked": late,
            "rejected_as_booked_on_closed_day": int(np.count_nonzero(seen)),
            "reversals": int(done.sum()),
            "reversal_fen": int(reversals["reversal_fen"].sum()),
            "corrections_not_reversed": int((~done).sum()),
            "carried_out_records": int(np.count_nonzero(result.outcome == PENDING)),
        },
    }


def _write_report(
    folder: Path,
    result: Settlement,
    source: ChunkSource,
    reversals: pd.DataFrame,
    extra: dict[str, Any],
    workers: int = 1,
) -> dict[str, Any]:
    """The day's report under its temporary name, fsynced, with SHA256SUMS last."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    reversals.to_csv(folder / REVERSALS_FILE, index=False)
    doc = write_settlement(folder, result, source, extra, workers=workers)
    (folder / SUMS_FILE).write_text(manifest(folder))
    fsync_tree(folder)
    return doc


def _write_carry(folder: Path, log: RecordLog) -> None:
    """The day's pending records under their temporary name, fsynced (none: no folder)."""
    shutil.rmtree(folder, ignore_errors=True)
    if len(log.records):
        write_log(folder, log)
        fsync_tree(folder)


def _rids(source: ChunkSource, rows: np.ndarray, *more: str) -> dict[str, np.ndarray]:
    """Record ids (as `rid`), TACs and the `more` fields of some log rows."""
    cols = fetch(source, ["terminal_id", "terminal_serial", "tac", *more], rows)
    rid = cols["terminal_id"].astype(np.uint64) << np.uint64(32)
    return {
        "rid": rid | cols["terminal_serial"].astype(np.uint64),
        "tac": cols["tac"].astype(np.uint64),
        **{name: cols[name] for name in more},
    }


def _booked_ids(source: ChunkSource, result: Settlement) -> BookedIndex:
    """Record ids and TACs of the day's booked records and the card counters they spent; the
    serials and digests of the batches the day accepted, and the ids of their records it
    rejected one by one; for the ledger's index."""
    cols = _rids(source, result.booked, "card_id", "card_counter", "batch_row")
    # Record-level reasons are given only inside accepted batches.
    own = np.flatnonzero(np.isin(result.outcome, RECORD_REASONS))
    rejected = _rids(source, own, "batch_row")
    rows = np.unique(np.r_[cols["batch_row"], rejected["batch_row"]])
    accepted = source.batches[rows]
    if result.batch_digests is None:
        raise AssertionError("a ledger day is settled by the kernel, which gives digests")
    return BookedIndex.of_days(
        [(cols["rid"], cols["tac"])],
        [(cols["card_id"], cols["card_counter"])],
        [batch_keys(accepted)],
        [rejected["rid"]],
        *day_chains(accepted, result.batch_digests[rows]),
    )
