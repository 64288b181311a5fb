"""How outputs are described: a file, its columns or JSON keys with their types and meanings,
and the KPIs. cardsim.results.outputs lists what each command writes in these terms.

Names may hold placeholders, expanded when a folder is checked: `{kpi}` (each KPI, with the
KPI's own type where the dtype says `kpi`), `{param}` (each varied scenario field of a sweep,
typed by its values: dtype `any`) and `*` (fnmatch: any written name it matches). Types are
Arrow types for Parquet (`large_string` reads as `string`, dictionaries as
`dictionary<values>`), pandas dtypes for CSV, and JSON types for JSON, where `a.b` is key b
inside object a, `a[].b` key b in each object of array a, and a `map` has keys that depend on
the data. `a|b` is either type.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch

OUTPUTS_VERSION = "cardsim.outputs/1"
"""Version of this schema. It goes up when a file, column or key is removed or renamed or
changes type or meaning; adding one keeps the version (readers skip what they do not know)."""


@dataclass(frozen=True)
class Column:
    """One table column or JSON key."""

    name: str
    dtype: str
    meaning: str


def _rows(table: str, fields: int) -> list[list[str]]:
    """Split a text table into rows of `fields` cells, the last one free text; an indented
    line continues the free text of the row above."""
    rows: list[list[str]] = []
    for line in table.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            rows[-1][-1] += " " + line.strip()
        else:
            rows.append(line.split(None, fields - 1))
    return rows


def columns(table: str, prefix: str = "") -> tuple[Column, ...]:
    """Parse a table of `name  dtype  meaning` lines; `prefix` goes before every name."""
    return tuple(Column(prefix + name, dtype, meaning) for name, dtype, meaning in _rows(table, 3))


@dataclass(frozen=True)
class OutputFile:
    """One file in an output folder."""

    path: str
    """Relative to the output folder."""
    meaning: str
    columns: tuple[Column, ...] = ()
    """Table columns in file order, or JSON keys."""
    schema: str = ""
    """The value of a JSON document's `schema` key."""
    optional: tuple[str, ...] = ()
    """Columns or keys that may be missing, as fnmatch patterns (the meaning says when)."""
    when: str = ""
    """Empty when the file is always written; else when it is."""

    @property
    def format(self) -> str:
        """parquet, csv, json, png... from the file name."""
        return self.path.rsplit(".", 1)[-1]

    def may_miss(self, name: str) -> bool:
        """The column or key `name` need not be written."""
        return any(fnmatch(name, pattern) for pattern in self.optional)


@dataclass(frozen=True)
class Kpi:
    """One figure of a day, in summary.json `kpis` and in every sweep row."""

    name: str
    kind: str
    """`integer`, `number`, or `number|null` (null when there was nothing to measure)."""
    unit: str
    meaning: str


def kpis(table: str) -> tuple[Kpi, ...]:
    """Parse a table of `name  kind  unit  meaning` lines."""
    return tuple(Kpi(*row) for row in _rows(table, 4))


KPIS = kpis("""
transactions_total                 integer  records  Records in the day's log: accepted taps,
    top-ups and insurance shares.
taps_total                         integer  taps     Taps the terminals saw, accepted or declined.
records_booked                     integer  records  Records booked by the day's settlement.
records_rejected                   integer  records  Records rejected with a reason code.
records_pending                    integer  records  Records uploaded after the cut-off (T+1).
declines_total                     integer  taps     Taps refused: purse short, card hotlisted,
    or below the bike minimum balance.
declines_insufficient_balance      integer  taps     Taps refused: the purse could not pay.
declines_hotlisted                 integer  taps     Taps refused: the card was on the hotlist.
cards_issued                       integer  cards    Cards issued today, usable before midnight.
cards_lost                         integer  cards    Cards reported lost today.
hotlist_exposure_fen               integer  fen      Spent by finders on lost cards before the
    hotlist reached the terminals.
bike_failed_rentals                integer  rentals  Rental requests that found no bike, after
    any walk to a neighbour.
bike_failed_return_attempts        integer  returns  Returns that found no free dock (each try).
hospital_registration_wait_mean_s  number   s        Mean wait for a registration window.
upload_failed_attempts             integer  uploads  Upload attempts that failed and were retried.
batches                            integer  batches  Batches uploaded to the clearing centre.
clearing_utilization               number   share    Share of the clearing workers' time spent
    checking batches.
clearing_wait_mean_s               number   s        Mean wait of a batch in the clearing queue.
clearing_wait_mean_s_ci95          number   s        95 % half-width of that mean from 20 batch
    means (NaN under 40 batches).
tap_to_cleared_p50_s               number|null  s    Median time from a tap to its batch cleared.
tap_to_cleared_p95_s               number|null  s    95th percentile of the time tap to cleared.
tap_to_cleared_p99_s               number|null  s    99th percentile of the time tap to cleared.
backlog_at_cutoff_records          integer  records  Records at the clearing centre by the
    cut-off but not yet cleared.
net_positions_sum_fen              integer  fen      Sum of the net positions: always 0.
""")
"""Every KPI of `cardsim.sim.kpis.kpis`, in its order."""
