"""What each command writes: every file, column and JSON key, with its type and meaning.
docs/output-schema.md is generated from these tables, and tests/test_docs.py runs each command
and checks that what it writes and what is listed here are the same.

Adding an output means adding it here: a file is one `OutputFile` in its command's tuple, a
column or JSON key one line `name  dtype  meaning` in its file's table (notation:
cardsim.results.schema), a KPI one line in `cardsim.results.schema.KPIS`.
"""

from __future__ import annotations

from dataclasses import replace

from cardsim.capacity.report import CAPACITY_SCHEMA
from cardsim.capacity.sweep import SUMMARY_SCHEMA as SWEEP_SCHEMA
from cardsim.ledger.clearing_days import DB_FILE, LEDGER_SCHEMA
from cardsim.ledger.durable import SUMS_FILE
from cardsim.records.keys import KEYS_SCHEMA
from cardsim.results.schema import Column, OutputFile, columns
from cardsim.results.settlement_files import SUMMARY_SCHEMA as SETTLEMENT_SCHEMA
from cardsim.runner import RUN_SCHEMA
from cardsim.settlement.params import PARAMS_SCHEMA

# ---- files shared by several commands ------------------------------------------------------

REPORT = OutputFile(
    "report.html",
    "Self-contained HTML report of the folder; `cardsim report DIR` rebuilds it from the files.",
)

SETTLEMENT_CSV = OutputFile(
    "settlement.csv",
    "Net position of every participant for the day (fen); net_fen sums to zero.",
    columns("""
participant   int64   0 issuer float, 1 fee income, 2 insurance fund, 16 and up payees.
role          string  issuer_float, fee_income, insurance_fund or payee.
received_fen  int64   Received through booked records.
paid_fen      int64   Paid through booked records.
fee_fen       int64   Fees paid (negative for fee_income, which receives them).
net_fen       int64   received_fen - paid_fen - fee_fen: what the participant is owed.
"""),
)

REJECTS = OutputFile(
    "rejects.parquet",
    "Every record not booked: rejected with its reason, or pending (after the cut-off).",
    columns("""
row              int64               Row of the record in records.parquet.
reason           uint8               Stable outcome code: 255 PENDING, else a reason code
    (docs/settlement.md).
reason_name      dictionary<string>  The outcome's name, e.g. DUPLICATE_RECORD or PENDING.
batch_row        int64               Row of the record's batch in batches.parquet.
terminal_id      uint32              Terminal that wrote the record.
terminal_serial  uint32              The terminal's record counter; with terminal_id, the
    record's identity.
card_id          uint64              Card number.
amount_fen       int64               Amount of the record.
"""),
)

ALERTS = OutputFile(
    "alerts.parquet",
    "What the clearing centre flags for investigation (docs/settlement.md); -1 where a column "
    "does not apply to the alert.",
    columns("""
code         uint8   Stable alert code (cardsim.settlement.reasons.Alert).
alert        string  The alert's name, e.g. CARD_COUNTER_GAP.
terminal_id  int64   Terminal concerned.
card_id      int64   Card concerned.
first        int64   First serial or counter of the range the alert is about.
last         int64   Last serial or counter of that range.
batch_row    int64   Row of the batch concerned in batches.parquet.
row          int64   Row of the record concerned in records.parquet.
"""),
)

RECORD_COLUMNS = columns("""
terminal_id        uint32  Terminal that wrote the record.
terminal_serial    uint32  The terminal's record counter; with terminal_id, the record's id.
card_id            uint64  Card number, 1 and up.
card_counter       uint32  The card's transaction counter after this transaction.
payee              uint32  Participant paid (for a top-up, the top-up agent), 16 and up.
time_ms            int64   Terminal clock, ms since the Unix epoch.
amount_fen         int64   Amount of the transaction.
balance_after_fen  int64   Card purse after the transaction.
domain             uint8   1 bus, 2 bike, 3 hospital, 4 pos, 5 topup.
kind               uint8   1 debit, 2 load, 3 refund, 4/5 deposit hold/release, 6 insurance share.
flags              uint16  Bit 0 authorised online, bit 1 recovered torn transaction.
reserved           uint32  Always 0.
tac                uint64  The card's MAC over the record's first 56 bytes.
""")
"""The 64-byte record of docs/record-format.md, one column per field."""

LOG_RECORD_COLUMNS = (
    columns("batch_row  int64  Row of the record's batch in batches.parquet.") + RECORD_COLUMNS
)
"""records.parquet of a record log."""

LOG_BATCH_COLUMNS = columns("""
terminal_id   uint32                 Terminal that uploaded.
batch_serial  uint32                 The terminal's batch counter: 1, 2, 3...
first_serial  uint32                 terminal_serial of the batch's first record.
last_serial   uint32                 terminal_serial of its last record.
record_count  uint32                 Records in the batch.
key_id        uint32                 The terminal key that signed (keys.json).
prev_digest   fixed_size_binary[32]  Digest of the terminal's previous batch (zeros for its first).
signature     fixed_size_binary[64]  Ed25519 signature over the batch digest.
uploaded_ms   int64                  Clearing-centre clock at arrival, ms since the Unix epoch.
""")
"""batches.parquet of a record log."""

SETTLEMENT_COUNTS = """
records.records                   integer  Records in the log.
records.booked                    integer  Records booked.
records.pending                   integer  Records after the cut-off (settle T+1).
records.rejected                  integer  Records rejected; booked + pending + rejected = records.
outcomes                          map      Records per outcome name (BOOKED, PENDING, reasons).
alerts                            map      Alerts per alert name.
checks.every_record_in_one_place  boolean  booked + pending + rejected = records.
checks.net_positions_sum_to_zero  boolean  The net positions sum to 0 fen.
"""

ACCOUNTING = """
records_written              integer  Records the terminals wrote, planted frauds included.
booked                       integer  Of which booked (a record's best copy decides).
rejected                     integer  Of which rejected.
pending                      integer  Of which pending (T+1).
lost_at_terminal             integer  Of which destroyed by a terminal crash before upload.
awaiting_recovery_on_card    integer  Torn debits still on a card at midnight (no record yet).
log_rows                     integer  Rows in records.parquet, repeated copies included.
repeated_copies              integer  Rows beyond each record's first copy.
double_counted               integer  Copies booked beyond the first: must be 0.
rejected_by_reason           map      Rejected records per reason name.
debits_lost_at_terminal_fen  integer  Card debits destroyed with their terminal.
debits_awaiting_recovery_fen integer  Card debits torn and not yet recovered.
every_record_in_one_place    boolean  written = booked + rejected + pending + lost, none twice.
"""
"""summary.json `accounting`: where every record the terminals wrote ended."""

INJECTION = """
faults.taps_refused_buffer_full    integer  Taps refused by a full depot terminal.
faults.terminals_crashed           integer  Terminals that crashed.
faults.records_in_buffer_at_crash  integer  Records waiting in crashed terminals.
faults.records_lost_at_terminal    integer  Of which lost (buffer not persisted).
faults.terminals_partitioned       integer  Terminals cut off from the network.
faults.terminals_with_bad_clocks   integer  Terminals whose clocks drift and jump.
faults.torn_transactions           integer  Debits torn.
faults.torn_recovered              integer  Of which recovered at the card's next tap.
faults.uploads_repeated            integer  Batches uploaded twice.
faults.uploads_reordered           integer  Batches overtaken by the terminal's next one.
faults.clearing_crashes            integer  Crashes of the clearing centre.
faults.clearing_checks_aborted     integer  Batch checks a crash cut short (sent again).
faults.clearing_acks_lost          integer  Acknowledgements a crash lost (batch sent again).
fraud.planted                      integer  Frauds planted.
fraud.expected_alerts              integer  Of which the clearing centre must flag.
fraud.fraud_alerts                 integer  Fraud alerts it raised.
fraud.caught                       integer  Expected frauds it flagged.
fraud.missed                       integer  Expected frauds it did not flag.
fraud.false_alerts                 integer  Fraud alerts with no planted fraud behind them.
fraud.by_kind                      map      Per kind: planted, expected, caught, value_fen.
"""
"""summary.json `injection`, written when the scenario injects faults or fraud."""

# ---- cardsim run ---------------------------------------------------------------------------

RUN_FILES = (
    OutputFile(
        "records/records.parquet",
        "The signed record log, one row per record, grouped by batch (docs/record-format.md).",
        LOG_RECORD_COLUMNS,
    ),
    OutputFile(
        "records/batches.parquet",
        "One row per upload: the signed batch header, its signature, its arrival.",
        LOG_BATCH_COLUMNS,
    ),
    OutputFile(
        "records/settlement-params.json",
        "The day's cut-off and fee schedule, so that `cardsim settle` reproduces the run.",
        columns("""
schema     string        Document type and version.
cutoff_ms  integer|null  Cut-off, clearing-centre ms since the Unix epoch: later is pending.
domain_bp  map           Fee rate per domain name (bus, bike, hospital, pos, topup), bp.
payee_bp   map           Fee rate per payee id where it is not its domain's (POS categories), bp.
"""),
        schema=PARAMS_SCHEMA,
    ),
    OutputFile(
        "keys.json",
        "Terminal public keys and the issuer master key (for TAC checks).",
        columns("""
schema                      string   Document type and version.
issuer.master_key_hex       string   The issuer's 16-byte TAC master key, hex.
issuer.tac                  string   TAC algorithm: siphash-2-4.
terminals[].key_id          integer  Key id that batch headers name.
terminals[].terminal_id     integer  Terminal that holds the key.
terminals[].public_key_hex  string   Ed25519 public key, 32 bytes, hex.
terminals[].revoked         boolean  Batches signed with a revoked key are rejected.
"""),
        schema=KEYS_SCHEMA,
    ),
    SETTLEMENT_CSV,
    REJECTS,
    ALERTS,
    OutputFile(
        "by_domain.csv",
        "Records and amounts per domain, for the domains with records.",
        columns("""
domain      string  bus, bike, hospital, pos or topup.
records     int64   Records in the log.
amount_fen  int64   Their amounts summed.
booked      int64   Of which booked.
pending     int64   Of which pending (after the cut-off).
"""),
    ),
    OutputFile(
        "by_hour.csv",
        "The load curve: records by hour of the tap, one column per domain with records.",
        columns("""
hour      int64  Hour of the day the card was tapped, 0-23.
bus       int64  Bus records tapped in that hour.
bike      int64  Bike records.
hospital  int64  Hospital records (self-pay and insurance shares).
pos       int64  Retail POS records.
topup     int64  Top-up records.
"""),
        optional=("bus", "bike", "hospital", "pos", "topup"),
    ),
    OutputFile(
        "injected.csv",
        "Every planted fraud with the alert it must raise, and every injected fault event; -1, "
        "empty or 0 where a column does not apply. Written only when the scenario injects "
        "faults or fraud.",
        columns("""
kind             string   Fraud (fabricated, hotlisted, clone...) or fault event (terminal_crash,
    lost_at_terminal, partition, clock_skew, torn, repeated_upload...).
alert            string   The alert a fraud must raise (empty for faults).
expected         bool     The fraud must be flagged.
detected         bool     The clearing centre flagged it.
terminal_id      int64    Terminal concerned.
terminal_serial  int64    Record concerned (with terminal_id).
batch_serial     int64    Batch concerned (with terminal_id).
card_id          int64    Card concerned.
card_counter     int64    The card's counter concerned.
amount_fen       int64    Money at stake.
time_s           float64  When it happened, s after midnight.
end_s            float64  When it ended (a partition), s after midnight.
detail           string   Free text (a bad clock's drift and jumps, a torn debit's fate).
"""),
        when="the scenario injects faults or fraud",
    ),
    *(
        OutputFile(f"series/{name}", f"For the plots and report.html: {meaning}", columns(table))
        for name, meaning, table in (
            (
                "clearing.csv",
                "the clearing queue per 5-minute bin.",
                """
bin_start_s         float64  Start of the bin, s after midnight.
queue_mean_batches  float64  Batches waiting, time average.
queue_max_batches   int64    Batches waiting, most at once.
busy_workers_mean   float64  Clearing workers busy, time average.
utilization         float64  busy_workers_mean / workers.
""",
            ),
            (
                "latency_quantiles.csv",
                "tap to cleared at 1,001 quantile levels.",
                """
quantile   float64  Level, 0 to 1 in steps of 0.001.
latency_s  float64  Time from tap to cleared at that level.
""",
            ),
            (
                "balances.csv",
                "cards per purse-balance bin, morning and night.",
                """
low_fen        int64  Lower edge of the bin.
high_fen       int64  Upper edge (excluded).
overflow       int64  1 on the last row, which counts every balance from low_fen up.
cards_opening  int64  Cards in the bin at the start of the day.
cards_closing  int64  Cards in the bin at the end of the day.
""",
            ),
            (
                "bike_stock.csv",
                "bikes docked each minute at the stations most often empty or full.",
                """
time_s     float64  Minute of the day, s after midnight.
station_*  int64    Bikes docked at that station (numbered from 0).
""",
            ),
            (
                "hospital_waits.csv",
                "waits per hospital window over the day.",
                """
window       string   registration, consultation or pharmacy.
patients     int64    Patients who waited there.
wait_mean_s  float64  Mean wait.
wait_p50_s   float64  Median wait.
wait_p90_s   float64  90th percentile of the wait.
wait_max_s   float64  Longest wait.
""",
            ),
            (
                "hospital_waits_by_hour.csv",
                "the same by hour of registration.",
                """
window       string   registration, consultation or pharmacy.
hour         int64    Hour the patient registered, 0-23.
patients     int64    Patients who waited there.
wait_mean_s  float64  Mean wait.
wait_p50_s   float64  Median wait.
wait_p90_s   float64  90th percentile of the wait.
wait_max_s   float64  Longest wait.
""",
            ),
            (
                "participants.csv",
                "who each participant of settlement.csv is.",
                """
participant  int64   Participant id, as in settlement.csv.
group        string  issuer_float, fee_income, insurance_fund, or the payee's group (bus,
    bike, hospital, a POS category, a top-up channel).
""",
            ),
        )
    ),
    OutputFile("plots/*.png", "The figures of report.html, one PNG each."),
    REPORT,
    OutputFile(
        "summary.json",
        "Written last. No clock readings or paths: the same scenario and seed, the same bytes.",
        columns("""
schema                                     string   Document type and version.
cardsim_version                            string   Version of cardsim that ran.
seed                                       integer  The run's one seed.
scenario                                   map      The scenario as run: the fields of
    docs/scenario-reference.md.
kpis.{kpi}                                 kpi      Each KPI (table above).
conservation.money_loaded_fen              integer  Opening balances plus loads.
conservation.opening_balances_fen          integer  Purse balances at the start of the day.
conservation.loads_fen                     integer  Loaded, refunded or released onto cards.
conservation.closing_balances_fen          integer  Purse balances at the end of the day.
conservation.debits_booked_fen             integer  Card debits booked.
conservation.debits_pending_fen            integer  Card debits pending (T+1).
conservation.debits_rejected_fen           integer  Card debits rejected.
conservation.money_conserved               boolean  Loaded = closing balances + debits
    booked, pending and rejected.
conservation.records_in_one_place          boolean  Every record booked, pending or rejected.
conservation.net_positions_sum_to_zero     boolean  settlement.csv net_fen sums to 0.
""")
        + columns(ACCOUNTING, prefix="accounting.")
        + columns(INJECTION, prefix="injection.")
        + columns(SETTLEMENT_COUNTS, prefix="settlement."),
        schema=RUN_SCHEMA,
        optional=("injection.*",),
    ),
)

# ---- cardsim settle ------------------------------------------------------------------------

BOOKED = OutputFile(
    "booked.parquet",
    "The booked records, sorted by (terminal_id, terminal_serial).",
    columns("""
row        int64  Row of the record in records.parquet.
batch_row  int64  Row of its batch in batches.parquet.
""")
    + RECORD_COLUMNS,
)

SETTLE_SUMMARY = (
    columns("schema  string  Document type and version.")
    + columns(SETTLEMENT_COUNTS)
    + columns("""
booked_received_fen    integer  Received by all participants through booked records.
fees_fen               integer  Fees charged.
net_positions_sum_fen  integer  Sum of the net positions: 0.
log                    string   The log folder as given on the command line.
""")
)
"""summary.json of a settlement, but for its cut-off."""

SETTLE_FILES = (
    SETTLEMENT_CSV,
    REJECTS,
    ALERTS,
    BOOKED,
    OutputFile(
        "summary.json",
        "Written last: counts, outcomes, alerts, money booked and the checks.",
        SETTLE_SUMMARY
        + columns(
            "cutoff_ms  integer|null  The cut-off used, ms since the Unix epoch (null: none)."
        ),
        schema=SETTLEMENT_SCHEMA,
    ),
)

# ---- cardsim settle --ledger ---------------------------------------------------------------

DAY_INPUT = (
    " In a day's report, `row` and `batch_row` count the day's input: the records carried from"
    " the previous day (carry/NNNN/) first, then the day's log."
)

LEDGER_BLOCK = """
day                               integer       The clearing day closed: 1, 2, 3...
previous_cutoff_ms                integer|null  The previous day's cut-off (null on day 1).
previous_report_sha256            string|null   The previous day's report hash, which chains
    the days (null on day 1).
carried_in_records                integer       Records pending at the previous day's cut-off,
    settled first today.
late_records_booked               integer       Booked today though received before the
    previous day's cut-off (delivered late).
rejected_as_booked_on_closed_day  integer       Rejected (DUPLICATE_RECORD or RECORD_CONFLICT)
    because a closed day booked the record.
reversals                         integer       Corrections reversed today.
reversal_fen                      integer       Their reversing amounts summed (the originals
    negated).
corrections_not_reversed          integer       Correction lines with another outcome
    (reversals.csv).
carried_out_records               integer       Records pending at today's cut-off, kept in
    carry/NNNN/ for the next day.
cross_day_checks_from_day         integer       First day whose card counters and batch
    serials the ledger keeps, for today's card pass and batch serial gaps (1 unless an
    earlier cardsim made the ledger).
chain_checks_from_day             integer       First day whose batch digests the ledger
    keeps: today's batches must chain to them (prev_digest) and not put another batch
    under their serials (1 unless an earlier cardsim made the ledger).
"""
"""summary.json `ledger` of a closed clearing day (docs/settlement.md section 7)."""

LEDGER_FILES = (
    OutputFile(
        DB_FILE,
        "The ledger's state, SQLite in WAL mode (its table meta names the schema, "
        f"{LEDGER_SCHEMA}): per closed day its cut-off, report hash, input fingerprint and "
        "records carried out; the record ids and TACs each day booked, the card counters they "
        "spent, the serials and digests of the batches it accepted and the ids of their "
        "records it rejected one by one; every reversal. Each "
        "closed day NNNN (0001 and up) has its report in days/NNNN/, renamed into place once "
        "the ledger has committed it and never written again.",
    ),
    replace(
        SETTLEMENT_CSV,
        path="days/*/settlement.csv",
        meaning="Net position of every participant for the day (fen), its reversing entries "
        "included; net_fen sums to zero.",
    ),
    replace(
        REJECTS,
        path="days/*/rejects.parquet",
        meaning="Every record of the day's input not booked: rejected with its reason, or "
        "pending (carried to the next day)." + DAY_INPUT,
    ),
    replace(ALERTS, path="days/*/alerts.parquet", meaning=ALERTS.meaning + DAY_INPUT),
    replace(BOOKED, path="days/*/booked.parquet", meaning=BOOKED.meaning + DAY_INPUT),
    OutputFile(
        "days/*/reversals.csv",
        "Every line of the day's --corrections file with its outcome (header only without "
        "one); 0 in the original's columns unless REVERSED.",
        columns("""
line             int64   Line of the corrections file (its header is line 1).
terminal_id      int64   Terminal of the record to reverse.
terminal_serial  int64   The terminal's record counter; with terminal_id, the record.
reference        string  The line's free-text reference (empty: none).
original_day     int64   Closed day that booked the record (0: none did).
outcome          int64   0 REVERSED, 1 NOT_BOOKED, 2 ALREADY_REVERSED, 3 REPEATED.
outcome_name     string  The outcome's name.
card_id          int64   The original record's card.
payee            int64   Its payee.
kind             int64   Its kind (as in records.parquet).
domain           int64   Its domain (as in records.parquet).
amount_fen       int64   Its amount.
reversal_fen     int64   The reversing entry booked today: -amount_fen.
"""),
    ),
    OutputFile(
        "days/*/summary.json",
        "The day's counts, outcomes, alerts, money booked and checks, and its place in the ledger.",
        SETTLE_SUMMARY
        + columns("cutoff_ms  integer  The day's cut-off, ms since the Unix epoch.")
        + columns(LEDGER_BLOCK, prefix="ledger."),
        schema=SETTLEMENT_SCHEMA,
    ),
    OutputFile(
        f"days/*/{SUMS_FILE}",
        "Written last: the SHA-256 of every other file of the report, as `sha256sum` writes "
        "them (check with `sha256sum -c`). The SHA-256 of this file is the day's report hash, "
        "recorded in ledger.sqlite when the day closes and named by the next day's summary.json.",
    ),
    OutputFile(
        "carry/*/records.parquet",
        "The records pending at day NNNN's cut-off, a record log settled first on the next "
        "day: as records/records.parquet of `cardsim run`.",
        LOG_RECORD_COLUMNS,
        when="records are pending at the day's cut-off",
    ),
    OutputFile(
        "carry/*/batches.parquet",
        "Their batches, as records/batches.parquet of `cardsim run`.",
        LOG_BATCH_COLUMNS,
        when="records are pending at the day's cut-off",
    ),
)
"""What the --ledger folder holds: each `cardsim settle --ledger` closes one more day."""

# ---- cardsim sweep and cardsim capacity ----------------------------------------------------

RUN_ROW = columns("""
run_id       int64  point * replications + replication: `--only RUN_ID` redoes the row.
point        int64  Grid point, in the order of the --vary product.
replication  int64  Replication within the point.
seed         int64  The replication's seed (the same at every point).
{param}      any    One column per varied field, named by its dotted path; a number is
    typed as its scenario field: int64 for a whole-number field, else float64.
{kpi}        kpi    One column per KPI.
""")

POINT_ROW = """
point             int64    Grid point.
{param}           any      One column per varied field.
replications      int64    Replications at the point.
{kpi}_mean        float64  Mean of the KPI over the replications (NaN when none is finite).
{kpi}_half_width  float64  Half-width of its confidence interval (NaN under two values).
"""

JSON_TYPES = {"int64": "integer", "float64": "number|null", "any": "any"}
"""summary.json holds summary.csv's rows, NaN as null."""

SWEEP_FILES = (
    OutputFile("runs.csv", "One row per run, streamed in run-id order.", RUN_ROW),
    OutputFile("runs.parquet", "The rows of runs.csv, typed (int64, double).", RUN_ROW),
    OutputFile("summary.csv", "One row per grid point.", columns(POINT_ROW)),
    OutputFile(
        "summary.json",
        "Written last: the plan, seeds included, and the per-point summary (NaN as null).",
        columns("""
schema             string   Document type and version.
scenario           string   The scenario file as given.
overrides          array    The fixed --set overrides, KEY=VALUE.
vary               map      Each varied field and its values.
replications       integer  Replications per point.
seed               integer  Root seed.
replication_seeds  array    The seed of each replication.
warmup_s           number   Latency percentiles count only taps from then on (s after midnight).
confidence         number   Two-sided confidence of the half-widths.
""")
        + tuple(
            Column(f"points[].{c.name}", JSON_TYPES[c.dtype], c.meaning) for c in columns(POINT_ROW)
        ),
        schema=SWEEP_SCHEMA,
    ),
    REPORT,
)

CURVE_ROW = """
mean          number|null  Mean of the SLA's KPI over the replications.
half_width    number|null  One-sided margin at the confidence (null under two values).
bound         number|null  mean + half_width for <=, mean - half_width for >=.
ok            boolean      The bound meets the SLA.
replications  integer      Replications at the value.
"""

CAPACITY_FILES = (
    *SWEEP_FILES,
    OutputFile(
        "capacity.csv",
        "The capacity curve: the SLA's KPI at each knob value (NaN where JSON has null).",
        columns("""
{param}       int64|float64  The knob's value, typed as its scenario field; the column is
    named by the knob.
mean          float64  Mean of the SLA's KPI over the replications.
half_width    float64  One-sided margin at the confidence.
bound         float64  mean + half_width for <=, mean - half_width for >=.
ok            bool     The bound meets the SLA.
replications  int64    Replications at the value.
"""),
    ),
    OutputFile(
        "capacity.json",
        "The question, the answer and the curve.",
        columns("""
schema             string       Document type and version.
knob               string       The varied field.
sla.kpi            string       The KPI the service level is on.
sla.op             string       <= or >=.
sla.limit          number       The limit, in the KPI's unit.
confidence         number       One-sided confidence that the SLA holds.
answer             number|null  Smallest knob value meeting the SLA (an integer for a
    whole-number field); null when none does.
message            string       The answer as one sentence.
curve[].knob       number       Knob value (an integer for a whole-number field).
""")
        + columns(CURVE_ROW, prefix="curve[]."),
        schema=CAPACITY_SCHEMA,
    ),
    OutputFile("capacity.png", "The KPI against the knob, its confidence band, the SLA line."),
)

# ---- cardsim exposure ----------------------------------------------------------------------

EXPOSURE_ROW = """
interval_s            float64  The hotlist refresh interval, s.
interval              string   Its short name: 90s, 30m, 1h, 24h, 3d.
replications          int64    Replication days at the interval.
cards_lost            int64    Cards lost, summed over the days (the same at every interval).
finder_taps           int64    Taps by the finders of lost cards, summed over the days.
finder_taps_accepted  int64    Of which terminals accepted: the hotlist had not reached them.
exposure_fen_total    int64    Spent by the finders, summed over the days.
exposure_fen_mean     int64    Spent by the finders per day, rounded to whole fen (half up).
exposure_fen_min      int64    The least spent on one day.
exposure_fen_max      int64    The most spent on one day.
"""

EXPOSURE_JSON = {"int64": "integer", "float64": "number", "string": "string"}

EXPOSURE_FILES = (
    OutputFile(
        "exposure.csv",
        "One row per hotlist refresh interval, in the order of --intervals.",
        columns(EXPOSURE_ROW),
    ),
    OutputFile(
        "exposure_runs.csv",
        "One row per interval and replication day; every interval sees the same days.",
        columns("""
interval_s            float64  The hotlist refresh interval, s.
replication           int64    Replication day, 0 and up.
seed                  int64    The day's seed (the same at every interval).
cards_lost            int64    Cards lost that day.
finder_taps           int64    Taps by the finders of lost cards.
finder_taps_accepted  int64    Of which terminals accepted.
exposure_fen          int64    Spent by the finders: the day's hotlist_exposure_fen KPI at this
    interval.
"""),
    ),
    OutputFile(
        "exposure.png",
        "Mean exposure per day against the interval (log scale), each replication day a dot.",
    ),
    OutputFile(
        "summary.json",
        "Written last: the scenario, the seeds and the rows of exposure.csv.",
        columns("""
schema             string   Document type and version.
scenario           map      The scenario as run, --set applied: the fields of
    docs/scenario-reference.md.
seed               integer  Root seed.
replication_seeds  array    The seed of each replication day.
""")
        + tuple(
            Column(f"intervals[].{c.name}", EXPOSURE_JSON[c.dtype], c.meaning)
            for c in columns(EXPOSURE_ROW)
        ),
        schema="cardsim.exposure/1",
    ),
)


def log_outputs() -> list[str]:
    """Names in a folder that describe the record log beside them: what `run` and `settle`
    write there. A command that writes a new log into the folder drops them."""
    return sorted({f.path.split("/")[0] for f in RUN_FILES + SETTLE_FILES})


COMMANDS: dict[str, tuple[OutputFile, ...]] = {
    "run": RUN_FILES,
    "settle": SETTLE_FILES,
    "settle --ledger": LEDGER_FILES,
    "sweep": SWEEP_FILES,
    "capacity": CAPACITY_FILES,
    "exposure": EXPOSURE_FILES,
}
"""What each command writes into its --out folder."""
