"""Faults and frauds woven into the city day: the hooks sim/city.py calls, in day order.

Nothing here runs when every fault and fraud is off (`injects` is false), so such runs are
byte for byte what they were before. The order of a day with injections:

1. taps: depot terminals with full buffers refuse taps (faults.refused_when_full);
2. records: torn debits move to the card's next tap (torn.py);
3. uploads: partitions delay cellular terminals' uploads; crash downtime of the clearing
   centre counts as an outage (faults.py);
4. before signing: crashes lose unuploaded buffers; repeats and reorders are drawn per upload;
   frauds are planted in records (fraud.py); bad clocks rewrite record times;
5. signing: merchants alter records between the TACs and the signatures;
6. after signing: batches tampered with, a stolen terminal's batches, repeats and reorders;
7. clearing: crashes mid-ingest and the journal replay (ingest.py);
8. after settlement: the back-office checks (settlement/backoffice.py).
"""

from __future__ import annotations

import numpy as np

from cardsim.records.layout import empty_records
from cardsim.records.log import RecordLog
from cardsim.scenario import Faults, Fraud, Scenario
from cardsim.settlement.backoffice import hotlist_alerts, shadow_balance_alerts
from cardsim.settlement.result import Settlement, make_alerts
from cardsim.settlement.source import MemorySource
from cardsim.sim.clearing import ClearingConfig, ClearingResult
from cardsim.sim.faults import (
    FAULT_STREAMS,
    FAULTS_KEY,
    FRAUD_KEY,
    at_risk_in_crash,
    clock_offset_ms,
    draw_terminal_faults,
    partition_delay,
    refused_when_full,
    sub_streams,
    with_crash_downtime,
)
from cardsim.sim.fraud import (
    CUTOFF_MARGIN_S,
    FRAUD_STREAMS,
    Planted,
    corrupt,
    plant_records,
    stolen_terminal,
    tamper,
)
from cardsim.sim.ingest import (
    CrashReport,
    batch_rows,
    next_of_terminal,
    repeat_and_reorder,
    replay_crashes,
)
from cardsim.sim.ledger import Transactions
from cardsim.sim.lost import LostCards
from cardsim.sim.taps import Taps
from cardsim.sim.torn import Torn, restore_recovered, tear
from cardsim.sim.uploads import Blocked, Uploads
from cardsim.sim.world import DAY_START_MS, World
from cardsim.sim.written import Written, compact


def injects(scenario: Scenario) -> bool:
    """Does the scenario ask for any fault or fraud (or the back-office checks)?"""
    return scenario.faults != Faults() or scenario.fraud != Fraud()


class Injection:
    """The day's faults and frauds: what was drawn, and what they did."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.scenario = with_crash_downtime(world.scenario)
        """The scenario as terminals and the front end see it (crash downtime as outages)."""
        self.streams = sub_streams(world.seed, FAULTS_KEY, FAULT_STREAMS)
        self.fraud_streams = sub_streams(world.seed, FRAUD_KEY, FRAUD_STREAMS)
        self.terminals = draw_terminal_faults(
            world.scenario.faults, world.terminals.cellular, self.streams
        )
        self.refused_taps = 0
        """Taps refused by depot terminals with a full buffer."""
        none = np.empty(0, np.int64)
        self.torn = Torn(none, none, np.empty(0), none, none, np.empty(0, bool))
        self.records_written = 0
        """Records the terminals wrote, planted ones included (before any was lost)."""
        self.at_risk = 0
        """Records in a terminal's buffer when it crashed (lost unless the buffer persists)."""
        self.lost = empty_records(0)
        """The records lost in terminal crashes."""
        self.planted: list[Planted] = []
        self.tag = self._partner = np.empty(0, np.int64)
        """Per signed record: the planted fraud it is (or whose counterpart it is), or -1."""
        self.genuine_fen: list[tuple[int, int, int]] = []
        """(terminal_id, serial, amount the card really paid) of records altered on the way."""
        self.repeated: list[tuple[int, int]] = []
        self.reordered: list[tuple[int, int]] = []
        """(terminal_id, batch_serial) of the uploads sent twice, or overtaken."""
        self.crashes = CrashReport()
        self.rogue_terminal_id = -1
        self._repeat = self._reorder = np.empty(0, bool)
        self._uploads: Uploads | None = None

    # -- taps and records (decide_day) --------------------------------------------------------

    def refuse(self, taps: Taps, finder: np.ndarray) -> tuple[Taps, np.ndarray]:
        """Drop the taps that depot terminals with full buffers refused."""
        if not self.world.scenario.faults.refuse_when_full:
            return taps, finder
        depot = ~self.world.terminals.cellular
        refused = refused_when_full(taps.terminal, taps.time_s, depot, self.world.scenario)
        self.refused_taps = int(refused.sum())
        return taps.take(~refused), finder[~refused]

    def tear(self, tx: Transactions, counter: np.ndarray) -> tuple[Transactions, np.ndarray]:
        """Torn debits move to the card's next tap (or stay on the card)."""
        share = self.world.scenario.faults.torn_share
        if share == 0.0:
            return tx, counter
        tx, counter, self.torn = tear(
            tx, counter, self.world.terminals, share, self.streams["torn"]
        )
        return tx, counter

    def restore(self, records: np.ndarray) -> None:
        """Recovered records carry the original tap's time, payee and domain."""
        if len(self.torn):
            restore_recovered(records, self.torn, self.world.terminals)

    # -- uploads and signing (simulate_day) ---------------------------------------------------

    @property
    def blocked(self) -> Blocked | None:
        """The uploads hook for network partitions, if any."""
        if self.world.scenario.faults.partition_share == 0.0:
            return None
        backoff = self.world.scenario.terminals.retry_backoff_s
        return partition_delay(self.terminals.partition_s, backoff)

    def before_signing(
        self, records: np.ndarray, written_s: np.ndarray, uploads: Uploads, lost: LostCards
    ) -> tuple[np.ndarray, np.ndarray, Uploads]:
        """Crash losses, upload repeats and reorders drawn, frauds planted, clocks skewed."""
        sc = self.world.scenario
        w = Written.start(records, written_s, uploads)
        at_risk = at_risk_in_crash(
            self.terminals.crash_s,
            records["terminal_id"].astype(np.int64) - 1,
            written_s,
            uploads.uploaded_s[uploads.batch_of],
        )
        self.at_risk = int(at_risk.sum())
        w.lost = at_risk & (not sc.faults.persisted_buffer)
        self._draw_upload_faults(uploads)
        w, self.planted = plant_records(
            w,
            uploads,
            self.world,
            sc.fraud,
            lost,
            self._reorder,
            sc.clearing.cutoff_s,
            self.fraud_streams,
        )
        self.records_written = len(w)
        self.lost = w.records[w.lost].copy()
        w, uploads, used = compact(w.take(~w.lost), uploads)
        self._repeat, self._reorder = self._repeat[used], self._reorder[used]
        w.records["time_ms"] += clock_offset_ms(
            self.terminals, w.records["terminal_id"].astype(np.int64) - 1, w.written_s
        )
        self.tag, self._partner, self._uploads = w.tag, w.partner, uploads
        return w.records, w.written_s, uploads

    def _draw_upload_faults(self, uploads: Uploads) -> None:
        """Which uploads will arrive twice, and which after the terminal's next one."""
        f, n = self.world.scenario.faults, len(uploads.terminal)
        self._repeat = self.streams["repeat"].random(n) < f.repeat_upload_share
        has_next = np.r_[uploads.terminal[1:] == uploads.terminal[:-1], False]
        self._reorder = (self.streams["reorder"].random(n) < f.reorder_share) & has_next

    def after_tacs(self, records: np.ndarray) -> None:
        """The sign_log hook: merchants' alterations and made-up TACs."""
        corrupt(records, self.tag, self.planted)

    def after_signing(
        self, log: RecordLog, rows: np.ndarray, written_s: np.ndarray
    ) -> tuple[RecordLog, np.ndarray, np.ndarray]:
        """Tampering, a stolen terminal, repeated and reordered uploads."""
        sc, uploads = self.world.scenario, self._uploads
        assert uploads is not None, "before_signing comes first"
        first, _ = batch_rows(log.batch_row, len(log.batches))
        plan = uploads.batch_of[rows[first]]
        repeat, reorder = self._repeat[plan], self._reorder[plan]
        planted = (self.tag[rows] >= 0) | (self._partner[rows] >= 0)
        touched = np.logical_or.reduceat(planted, first) if len(rows) else repeat
        cutoff_ms = DAY_START_MS + (sc.clearing.cutoff_s - CUTOFF_MARGIN_S) * 1000
        touchable = (log.batches["uploaded_ms"] <= cutoff_ms) & ~touched & ~reorder
        self.genuine_fen = tamper(
            log, touchable, sc.fraud.tampered_batches, self.planted, self.fraud_streams["tampered"]
        )
        if sc.fraud.revoked_key_batches:
            rogue, rogue_s = stolen_terminal(
                self.world,
                sc.fraud.revoked_key_batches,
                self.planted,
                self.fraud_streams["revoked"],
            )
            self.rogue_terminal_id = int(rogue.batches["terminal_id"][0])
            self.records_written += len(rogue.records)
            rows = np.r_[rows, len(written_s) + np.arange(len(rogue.records))]
            written_s = np.r_[written_s, rogue_s]
            self.tag = np.r_[self.tag, np.full(len(rogue.records), -1, np.int64)]
            log = log.concat(rogue)
            repeat, reorder = (
                np.r_[m, np.zeros(len(rogue.batches), bool)] for m in (repeat, reorder)
            )
        reorder &= next_of_terminal(log.batches) >= 0  # the last upload cannot be overtaken
        self.repeated = _names(log.batches[repeat])
        self.reordered = _names(log.batches[reorder])
        if repeat.any() or reorder.any():
            log, rows = repeat_and_reorder(log, rows, repeat, reorder, sc.terminals.retry_backoff_s)
        return log, rows, written_s

    # -- clearing and the back office ---------------------------------------------------------

    @property
    def crashing(self) -> bool:
        """Does the clearing centre crash today (in city mode, where batches are queued)?"""
        sc = self.world.scenario
        return bool(sc.faults.clearing_crash_s) and sc.clearing.mode == "city"

    def crash_and_replay(
        self, log: RecordLog, rows: np.ndarray, config: ClearingConfig, rng: np.random.Generator
    ) -> tuple[RecordLog, np.ndarray, ClearingResult, np.ndarray]:
        """Clearing-centre crashes mid-ingest: the journal as a log, the queue over every
        attempt, and when each journal row was cleared."""
        log, rows, result, cleared, self.crashes = replay_crashes(
            log, rows, self.scenario, config, rng, self.streams["clearing"]
        )
        return log, rows, result, cleared

    def back_office(self, log: RecordLog, settlement: Settlement, lost: LostCards) -> Settlement:
        """Shadow-balance and hotlist alerts added to the settlement's (if asked for)."""
        if not self.world.scenario.fraud.back_office_checks:
            return settlement
        source = MemorySource(log)

        def batch_of(rows: np.ndarray) -> np.ndarray:
            return log.batch_row[rows]

        listed_ms = DAY_START_MS + np.round(lost.lost_s * 1000).astype(np.int64)
        found = shadow_balance_alerts(source, settlement.outcome, batch_of)
        found += hotlist_alerts(source, settlement.outcome, batch_of, lost.card + 1, listed_ms)
        alerts = make_alerts(np.concatenate([settlement.alerts, make_alerts(found)]))
        return Settlement(settlement.outcome, settlement.booked, alerts, settlement.positions)


def _names(batches: np.ndarray) -> list[tuple[int, int]]:
    return list(zip(batches["terminal_id"].tolist(), batches["batch_serial"].tolist(), strict=True))
