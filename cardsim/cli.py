"""The `cardsim` command line: a thin layer over the library. Bad input exits 2 in one line."""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import pandas as pd
import typer
from tqdm import tqdm
from typer.core import TyperGroup, TyperOption

from cardsim.capacity.report import SHOWN_KPIS, format_summary
from cardsim.errors import InputError
from cardsim.ledger.clearing_days import report_sha256
from cardsim.ledger.day_close import DayInputs, close_day
from cardsim.ledger.settle_journal import SettleJournal, settle_durably, settle_inputs
from cardsim.records.codes import Domain
from cardsim.records.keys import load_registry
from cardsim.records.log import LogReader, use_system_allocator, write_log
from cardsim.results.atomic import atomic_folder, check_output_folder
from cardsim.results.settlement_files import write_settlement
from cardsim.scenario import load_scenario
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.kernel import settle as settle_log
from cardsim.settlement.params import SettlementParams, load_params
from cardsim.settlement.result import Settlement


class _Commands(TyperGroup):
    """The commands. Help shows a boolean flag as plain `--flag`, here and in each command:
    typer would print a `<bool>` value type beside it, which a flag does not take."""

    def get_help_option(self, ctx: Any) -> TyperOption | None:
        option = super().get_help_option(ctx)
        _plain_flag(option)
        return option

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            for param in (*command.params, command.get_help_option(ctx)):
                _plain_flag(param)
        return command


def _plain_flag(param: object) -> None:
    if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
        param.metavar = ""  # an empty metavar: no value type in the help


app = typer.Typer(
    cls=_Commands,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    help="cardsim: a city's multi-function citizen card, from tap to settlement.",
)
F = TypeVar("F", bound=Callable[..., Any])


def _print_version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import version

        typer.echo(f"cardsim {version('cardsim')}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            metavar="",
            help="Print the version.",
        ),
    ] = False,
) -> None:
    """cardsim: a city's multi-function citizen card, from tap to settlement."""


def user_errors(fn: F) -> F:
    """Turn InputError into `cardsim: error: FILE: what is wrong` and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            if kwargs.get("out") is not None:  # every command's --out, before any work
                check_output_folder(kwargs["out"])
            return fn(*args, **kwargs)
        except InputError as exc:
            typer.echo(f"cardsim: error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _bar(total: int, label: str) -> tqdm:
    return tqdm(
        total=total,
        unit="rec",
        unit_scale=True,
        desc=label,
        leave=False,
        disable=None,
        file=sys.stderr,
    )


@app.command()
@user_errors
def bench(
    records: Annotated[
        int,
        typer.Option(
            min=1, max=200_000_000, metavar="N", help="Records in the synthetic peak-day log."
        ),
    ] = 1_000_000,
    batch_size: Annotated[
        int, typer.Option(min=1, max=65_536, metavar="B", help="Typical records per upload batch.")
    ] = 1_000,
    terminals: Annotated[
        int, typer.Option(min=1, max=1_000_000, metavar="T", help="Terminals uploading.")
    ] = 20_000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, metavar="W", help="Settlement threads.")
    ] = 1,
    rounds: Annotated[
        int,
        typer.Option(
            min=1,
            max=100,
            metavar="R",
            help="Times to settle and to measure the floor; figures are medians. With "
            "--workers above 1 each round also runs both on one thread, right after, and "
            "prints the speed-up.",
        ),
    ] = 3,
    seed: Annotated[int, typer.Option(min=0, metavar="N", help="Seed of the synthetic log.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Keep the log here: DIR/records/ and DIR/keys.json."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Settle a synthetic peak-day log (about 1 % repeated uploads, a few tampered and forged
    records) and compare its speed with the crypto floor: SHA-256 over the same bytes plus one
    Ed25519 verification per batch, measured in the same run."""
    from cardsim.bench import measure
    from cardsim.results.outputs import log_outputs
    from cardsim.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(records=records, terminals=terminals, batch_size=batch_size, seed=seed)
    with tempfile.TemporaryDirectory() as scratch:
        folder = out or Path(scratch)
        if not as_json:
            typer.echo(f"seed {seed}: generating {records:,} records...", err=True)
        day = generate(spec)
        with atomic_folder(folder, stale=log_outputs()) as tmp:
            write_log(tmp / "records", day.log)
            day.registry.save(tmp / "keys.json")
        runs = rounds * (2 if workers > 1 else 1)
        with _bar(runs * len(day.log.records), "settling") as bar:
            result = measure(folder / "records", day.log, day.registry, workers, bar.update, rounds)
    figures = result.as_json() | {"seed": seed, "batch_size": batch_size, "terminals": terminals}
    if as_json:
        typer.echo(json.dumps(figures))
        return
    for label, key, fmt in _BENCH_ROWS:
        if key in figures:
            typer.echo(f"{label:<34}{format(figures[key], fmt):>16}")
    if out is not None:
        typer.echo(f"wrote {out}/records/ and {out}/keys.json")


_BENCH_ROWS = [
    ("records", "records", ","),
    ("batches", "batches", ","),
    ("workers", "workers", "d"),
    ("rounds (figures are medians)", "rounds", "d"),
    ("settle seconds", "seconds", ".3f"),
    ("records/s", "records_per_s", ","),
    ("crypto floor records/s", "floor_records_per_s", ","),
    ("ratio to floor", "ratio_to_floor", ".3f"),
    ("floor incl. TAC check records/s", "floor_plus_tac_records_per_s", ","),
    ("one worker settle seconds", "one_worker_seconds", ".3f"),
    ("speed-up vs one worker", "speedup_vs_one_worker", ".2f"),
    ("floor speed-up vs one thread", "floor_speedup_vs_one_thread", ".2f"),
    ("peak memory / raw record bytes", "peak_memory_to_raw", ".3f"),
    ("booked", "booked", ","),
    ("rejected", "rejected", ","),
    ("pending", "pending", ","),
    ("alerts", "alerts", ","),
    ("net positions sum (fen)", "net_positions_sum_fen", "d"),
]


def _fee_schedule(specs: list[str], base: FeeSchedule) -> FeeSchedule:
    rates = dict(base.bp)
    for spec in specs:
        name, _, value = spec.partition("=")
        try:
            domain = Domain[name.strip().upper()]
            rate = int(value)
        except (KeyError, ValueError):
            allowed = ", ".join(d.name.lower() for d in Domain)
            raise typer.BadParameter(
                f"{spec!r}: use DOMAIN=BP with DOMAIN one of {allowed} "
                "and BP a whole number of basis points"
            ) from None
        if not 0 <= rate <= 10_000:
            raise typer.BadParameter(f"{spec!r}: basis points must be 0..10000")
        rates[domain] = rate
    return FeeSchedule(rates, base.payee_bp)


_LEDGER_HELP = (
    "Clearing-day ledger folder: close its open day with this log (report in DIR/days/NNNN/, "
    "its SHA-256 in the ledger). Needs a cut-off."
)
_CORRECTIONS_HELP = (
    "With --ledger: CSV of booked records to reverse today (terminal_id, terminal_serial, "
    "optional reference)."
)


def _close_day(ledger: Path, inputs: DayInputs, rows: int) -> None:
    from cardsim.report.formats import plural

    with _bar(rows, "settling") as bar:
        doc = close_day(ledger, inputs, bar.update, lambda line: typer.echo(line, err=True))
    counts, day = doc["records"], doc["ledger"]
    typer.echo(
        f"day {day['day']} closed at cut-off {doc['cutoff_ms']}: "
        f"{plural(counts['records'], 'record')}, "
        f"{counts['booked']:,} booked ({day['late_records_booked']:,} late), "
        f"{counts['rejected']:,} rejected ({day['rejected_as_booked_on_closed_day']:,} booked "
        f"on a closed day), {counts['pending']:,} carried to day {day['day'] + 1}; "
        f"{plural(day['reversals'], 'reversal')} ({day['reversal_fen']} fen)"
    )
    report = ledger / "days" / f"{day['day']:04d}"
    typer.echo(f"day {day['day']} report: {report}/ (sha256 {report_sha256(report)})")


@app.command()
@user_errors
def settle(
    log: Annotated[
        Path,
        typer.Argument(
            metavar="LOG",
            help="Record log folder (records.parquet and "
            "batches.parquet; see docs/record-format.md).",
        ),
    ],
    keys: Annotated[Path, typer.Option(metavar="FILE", help="Key registry (keys.json).")],
    out: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Output folder; give this or --ledger.")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, metavar="W", help="Settlement threads.")
    ] = 1,
    cutoff_ms: Annotated[
        int | None,
        typer.Option(
            metavar="MS",
            help="Day cut-off, clearing-centre clock in ms since the Unix epoch: batches uploaded "
            "later are pending. Default: the log's settlement-params.json, else none.",
        ),
    ] = None,
    fee_bp: Annotated[
        list[str] | None,
        typer.Option(
            metavar="DOMAIN=BP",
            help="Fee rate DOMAIN=BP (repeatable), e.g. pos=60. Default: the log's "
            "settlement-params.json, else bus=50, pos=60, others 0.",
        ),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(metavar="tcp://HOST:PORT", help=_SETTLE_SCHEDULER_HELP)
    ] = None,
    ledger: Annotated[Path | None, typer.Option(metavar="DIR", help=_LEDGER_HELP)] = None,
    day: Annotated[
        int | None,
        typer.Option(
            min=1, metavar="N", help="With --ledger: the day being closed. Default: the open day."
        ),
    ] = None,
    corrections: Annotated[
        Path | None, typer.Option(metavar="FILE", help=_CORRECTIONS_HELP)
    ] = None,
) -> None:
    """Settle any log in the documented format: writes settlement.csv, rejects.parquet,
    alerts.parquet, booked.parquet and summary.json (written last). Exit 0 when it settled:
    rejects are data, not failures. Progress is journaled: after a crash, the same command
    resumes where it stopped. With --ledger, closes a clearing day instead (docs/settlement.md)."""
    _check_scheduler(scheduler)
    registry = load_registry(keys)
    reader = LogReader(log)
    params = load_params(log) or SettlementParams()
    fees = _fee_schedule(fee_bp or [], params.fees)
    cutoff_ms = params.cutoff_ms if cutoff_ms is None else cutoff_ms
    if ledger is not None:
        if out is not None or scheduler is not None:
            raise InputError(
                ledger, "--ledger closes a day into the ledger: no --out, no --scheduler"
            )
        today = DayInputs(log, keys, registry, fees, cutoff_ms, corrections, day, workers)
        return _close_day(ledger, today, reader.rows)
    if out is None or day is not None or corrections is not None:
        raise InputError(log, "use --out DIR, or --ledger DIR [--day N] [--corrections FILE]")

    def run(journal: SettleJournal) -> Settlement:
        with _bar(reader.rows, "settling") as bar:
            if scheduler is not None:
                from cardsim.cluster.settlement import settle_on_cluster

                return settle_on_cluster(
                    scheduler, reader, registry, fees, cutoff_ms, workers, bar.update
                )
            return settle_log(
                reader, registry, fees, cutoff_ms, workers, bar.update, journal=journal
            )

    def write(tmp: Path, result: Settlement) -> dict[str, Any]:
        if sys.stderr.isatty():  # like the progress bar: a few seconds at peak scale
            booked = f"booked.parquet: {len(result.booked):,} records"
            typer.echo(f"writing {out} ({booked}) ...", err=True)
        extra = {"log": str(log), "cutoff_ms": cutoff_ms}
        return write_settlement(tmp, result, reader, extra, workers=workers)

    from cardsim.report.formats import plural

    inputs = settle_inputs(log, keys, cutoff_ms, fees)
    doc = settle_durably(out, inputs, run, write, lambda line: typer.echo(line, err=True))
    counts = doc["records"]
    typer.echo(
        f"settled {plural(counts['records'], 'record')}: {counts['booked']:,} booked, "
        f"{counts['rejected']:,} rejected, {counts['pending']:,} pending; "
        f"{plural(sum(doc['alerts'].values()), 'alert')}; net positions sum "
        f"{doc['net_positions_sum_fen']} fen"
    )
    typer.echo(
        f"wrote {out}/settlement.csv, rejects.parquet, alerts.parquet, booked.parquet, summary.json"
    )


@app.command()
@user_errors
def run(
    scenario: Annotated[
        Path, typer.Argument(metavar="SCENARIO", help="Scenario TOML file (see scenarios/).")
    ],
    out: Annotated[Path, typer.Option(metavar="DIR", help="Output folder.")],
    seed: Annotated[int, typer.Option(min=0, metavar="N", help="The run's one seed.")] = 1,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY.PATH=VALUE",
            help="Override a scenario field, KEY.PATH=VALUE (repeatable), e.g. clearing.workers=4.",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, metavar="W", help="Settlement threads.")
    ] = 1,
) -> None:
    """Simulate one city day and write DIR/records/ (the signed log), keys.json,
    settlement.csv, rejects and alerts, by_domain.csv, by_hour.csv, series/ and plots/,
    report.html and summary.json (last)."""
    from cardsim.report.formats import plural
    from cardsim.runner import STAGES
    from cardsim.runner import run as run_day

    sc = load_scenario(scenario, set_ or [])
    typer.echo(f"seed {seed}", err=True)
    with tqdm(
        total=len(STAGES), desc=sc.name, unit="stage", leave=False, disable=None, file=sys.stderr
    ) as bar:

        def stage(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update(1)

        doc = run_day(sc, seed, out, stage, workers)
    k, c = doc["kpis"], doc["conservation"]
    typer.echo(
        f"{sc.name}, seed {seed}: {plural(k['transactions_total'], 'transaction')}, "
        f"{k['records_booked']:,} booked, {k['records_pending']:,} pending, "
        f"{k['records_rejected']:,} rejected, {plural(k['declines_total'], 'decline')}"
    )
    typer.echo(
        f"clearing: utilisation {k['clearing_utilization']:.3f}, mean wait "
        f"{k['clearing_wait_mean_s']:.3f} s (+/- {k['clearing_wait_mean_s_ci95']:.3f}), "
        f"tap to cleared p50/p95/p99 {k['tap_to_cleared_p50_s']} / "
        f"{k['tap_to_cleared_p95_s']} / {k['tap_to_cleared_p99_s']} s"
    )
    typer.echo(
        f"money conserved: {c['money_conserved']}; every record in one place: "
        f"{c['records_in_one_place']}; net positions sum {k['net_positions_sum_fen']} fen"
    )
    _echo_accounting(doc)
    typer.echo(f"wrote {out}/")


def _echo_accounting(doc: dict[str, Any]) -> None:
    from cardsim.report.formats import plural

    a = doc["accounting"]
    typer.echo(
        f"accounting: {plural(a['records_written'], 'record')} written = {a['booked']:,} booked + "
        f"{a['rejected']:,} rejected + {a['pending']:,} pending + {a['lost_at_terminal']:,} "
        f"lost at terminals: {a['every_record_in_one_place']}; "
        f"double counted {a['double_counted']}"
    )
    if "injection" in doc:
        f = doc["injection"]["fraud"]
        typer.echo(
            f"frauds: {f['caught']} of {f['expected_alerts']} caught ({f['planted']} planted), "
            f"{f['missed']} missed, {plural(f['false_alerts'], 'false alert')} (injected.csv)"
        )


def _report(folder: Path) -> Path:
    from cardsim.report import write_report

    return write_report(folder)


@app.command()
@user_errors
def report(
    folder: Annotated[
        Path,
        typer.Argument(metavar="DIR", help="Output folder of cardsim run, sweep or capacity."),
    ],
) -> None:
    """Rebuild DIR/report.html (and a run's DIR/plots/) from the files in DIR alone: one
    self-contained page with the scenario, seed, KPIs, settlement, rejects and alerts, the
    conservation check and the plots; for a sweep or capacity search, the summary table and
    the capacity curve. The same folder always gives the same bytes."""
    typer.echo(f"wrote {_report(folder)}")


@app.command()
@user_errors
def validate(
    scenario: Annotated[Path, typer.Argument(metavar="SCENARIO", help="Scenario TOML file.")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY.PATH=VALUE",
            help="Override a field before checking, KEY.PATH=VALUE (repeatable).",
        ),
    ] = None,
) -> None:
    """Check a scenario file: every key known, every value within its bounds."""
    from cardsim.report.formats import plural

    sc = load_scenario(scenario, set_ or [])
    typer.echo(
        f"{scenario}: ok ({sc.name}: {plural(sc.population.cards, 'card')}, "
        f"{plural(sc.bus.vehicles, 'bus', 'buses')}, "
        f"{plural(sc.clearing.workers, 'clearing worker')})"
    )


@app.command()
@user_errors
def partition(
    log: Annotated[Path, typer.Argument(metavar="LOG", help="Record log folder to lay out again.")],
    shards: Annotated[
        int,
        typer.Option(
            min=1, max=1024, metavar="N", help="Partitions: the Dask workers to settle on."
        ),
    ],
    out: Annotated[Path, typer.Option(metavar="DIR", help="Output log folder.")],
) -> None:
    """Rewrite a log in partitions of whole terminals, each terminal's batches in upload order,
    so that `cardsim settle --scheduler` gives each worker only its own row groups. Settles
    to the same booked records and positions; rows are renumbered."""
    from cardsim.report.formats import plural
    from cardsim.settlement.shards import partition_log

    reader = LogReader(log)
    params = load_params(log)
    laid_out, firsts = partition_log(reader.read_all(), shards)
    with atomic_folder(out) as tmp:
        write_log(tmp, laid_out, firsts)
        if params is not None:
            params.save(tmp)
    counts = f"{plural(reader.rows, 'record')} in {plural(len(firsts), 'partition')}"
    typer.echo(f"wrote {out}/ ({counts})")


_REPLICATIONS_HELP = (
    "Replications per point (independent random streams, the same seeds at every point). "
    "The CI half-width shrinks as 1/sqrt(R): halving it takes four times the replications. "
    "Start with 5-10, read the half-widths, then scale R by (half-width / wanted half-width)^2."
)


def _sweep_spec(
    scenario: Path,
    vary: list[str],
    set_: list[str] | None,
    replications: int,
    seed: int,
    warmup_s: float,
) -> Any:
    """Parse and validate the whole grid before any run: a bad --vary is one line, exit 2."""
    from cardsim.capacity.grid import parse_vary, validate_grid
    from cardsim.capacity.sweep import SweepSpec

    overrides = list(set_ or [])
    load_scenario(scenario, overrides)
    axes = tuple(parse_vary(spec, scenario) for spec in vary)
    validate_grid(scenario, overrides, axes)
    return SweepSpec(scenario, tuple(overrides), axes, replications, seed, warmup_s)


def _run_sweep_with_bar(
    spec: Any, folder: Path, workers: int, scheduler: str | None
) -> dict[str, Any]:
    from cardsim.capacity.sweep import run_sweep

    with tqdm(
        total=spec.runs, desc="sweep", unit="run", leave=False, disable=None, file=sys.stderr
    ) as bar:
        return run_sweep(spec, folder, workers, lambda: bar.update(1), scheduler)


def _local_workers(workers: int | None, scheduler: str | None) -> int:
    """Processes for the runs: --workers, by default every core; none with --scheduler."""
    if scheduler is not None and workers is not None:
        raise InputError("--scheduler", "the cluster's workers do the runs: drop --workers")
    _check_scheduler(scheduler)
    return workers or os.cpu_count() or 1


def _check_scheduler(scheduler: str | None) -> None:
    """A malformed or unreachable --scheduler fails at once, before any work."""
    if scheduler is not None:
        from cardsim.cluster.connection import check_address

        check_address(scheduler)


_WORKERS_HELP = "Runs at once, in local processes. Default: every core of this machine."
_SCHEDULER_HELP = (
    "Run on the Dask cluster whose scheduler is at tcp://HOST:PORT (`dask scheduler`, then "
    "`dask worker tcp://HOST:PORT` on each machine) instead of local processes. Same bytes."
)
_SETTLE_SCHEDULER_HELP = (
    "Settle on the Dask cluster whose scheduler is at tcp://HOST:PORT, one shard of whole "
    "terminals per worker; workers read LOG at the same path. Same bytes."
)


_SET_HELP = "Override a scenario field for every run, KEY.PATH=VALUE (repeatable)."
_WARMUP_HELP = (
    "Warm-up (s after midnight): tap-to-cleared percentiles count only records tapped from "
    "then on; the other KPIs cover the whole day."
)

# Options that sweep and capacity share, declared once.
_RunWorkers = Annotated[int | None, typer.Option(min=1, max=64, metavar="N", help=_WORKERS_HELP)]
_RootSeed = Annotated[
    int, typer.Option(min=0, metavar="N", help="Root seed of the replication streams.")
]
_RunSets = Annotated[
    list[str] | None, typer.Option("--set", metavar="KEY.PATH=VALUE", help=_SET_HELP)
]
_Warmup = Annotated[
    float, typer.Option(min=0.0, max=86_400.0, metavar="SECONDS", help=_WARMUP_HELP)
]
_Scheduler = Annotated[str | None, typer.Option(metavar="tcp://HOST:PORT", help=_SCHEDULER_HELP)]


@app.command()
@user_errors
def sweep(
    scenario: Annotated[Path, typer.Argument(metavar="SCENARIO", help="Scenario TOML file.")],
    vary: Annotated[
        list[str],
        typer.Option(
            metavar="KEY.PATH=V1,V2,...",
            help="A varied field, KEY.PATH=V1,V2,... (repeatable; the grid is the product).",
        ),
    ],
    out: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Output folder (not needed with --only).")
    ] = None,
    replications: Annotated[
        int, typer.Option(min=1, max=10_000, metavar="R", help=_REPLICATIONS_HELP)
    ] = 5,
    workers: _RunWorkers = None,
    seed: _RootSeed = 0,
    set_: _RunSets = None,
    warmup_s: _Warmup = 0.0,
    only: Annotated[
        int | None,
        typer.Option(
            min=0,
            metavar="RUN_ID",
            help="Redo one run id alone and print its row as JSON (no files).",
        ),
    ] = None,
    scheduler: _Scheduler = None,
    show: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KPI",
            help="A KPI to print per point as mean +/- 95 % half-width (repeatable). Default: "
            "tap_to_cleared_p95_s, clearing_wait_mean_s, clearing_utilization.",
        ),
    ] = None,
) -> None:
    """Run every grid point of --vary times --replications and write DIR/runs.csv and
    runs.parquet (one row per run: run_id, point, replication, seed, the varied fields, every
    KPI; streamed in run-id order), summary.csv and summary.json (per point, the mean and
    95 % CI half-width of every numeric KPI; written last). Same command, same bytes, whatever
    --workers or --scheduler."""
    from cardsim.capacity.sweep import run_by_id
    from cardsim.report.formats import plural

    processes = _local_workers(workers, scheduler)
    spec = _sweep_spec(scenario, vary, set_, replications, seed, warmup_s)
    if only is not None:
        if scheduler is not None:
            raise InputError("--scheduler", "--only re-runs one run here: drop --scheduler")
        if only >= spec.runs:
            raise InputError(scenario, f"--only {only}: run ids are 0..{spec.runs - 1}")
        typer.echo(json.dumps(run_by_id(spec, only)))
        return
    if out is None:
        raise InputError(scenario, "--out is required (unless --only)")
    shown = _shown_kpis(show)
    where = f"the Dask cluster at {scheduler}" if scheduler else plural(processes, "worker")
    typer.echo(f"seed {seed}: {plural(spec.runs, 'run')} on {where}", err=True)
    with atomic_folder(out) as tmp:
        doc = _run_sweep_with_bar(spec, tmp, processes, scheduler)
        _report(tmp)
        points = pd.read_csv(tmp / "summary.csv")
    typer.echo(
        f"{plural(len(doc['points']), 'point')} x {plural(replications, 'replication')} = "
        f"{plural(spec.runs, 'run')}; "
        f"replication seeds {doc['replication_seeds']}"
    )
    for line in format_summary(points, [v.split("=", 1)[0].strip() for v in vary], shown):
        typer.echo(line)
    typer.echo(f"wrote {out}/runs.csv, runs.parquet, summary.csv, summary.json, report.html")


def _shown_kpis(show: list[str] | None) -> list[str]:
    """The KPIs to print after a sweep; an unknown name is a one-line error before any run."""
    from cardsim.capacity import KPI_NAMES

    for name in show or []:
        if name not in KPI_NAMES:
            raise InputError("--show", f"unknown KPI {name!r}; one of {', '.join(KPI_NAMES)}")
    return list(show or SHOWN_KPIS)


@app.command()
@user_errors
def capacity(
    scenario: Annotated[Path, typer.Argument(metavar="SCENARIO", help="Scenario TOML file.")],
    knob: Annotated[
        str,
        typer.Option(metavar="KEY.PATH", help="A numeric scenario field, e.g. clearing.workers."),
    ],
    values: Annotated[
        str, typer.Option(metavar="V1,V2,...", help="Knob values to try, V1,V2,..., e.g. 1,2,4,8.")
    ],
    sla: Annotated[
        str,
        typer.Option(
            metavar='"KPI<=LIMIT"',
            help="Service level KPI<=LIMIT or KPI>=LIMIT, in the KPI's unit.",
        ),
    ],
    out: Annotated[Path, typer.Option(metavar="DIR", help="Output folder.")],
    confidence: Annotated[
        float,
        typer.Option(
            min=0.5, max=0.999, metavar="LEVEL", help="One-sided confidence that the SLA holds."
        ),
    ] = 0.95,
    replications: Annotated[
        int, typer.Option(min=2, max=10_000, metavar="R", help=_REPLICATIONS_HELP)
    ] = 5,
    workers: _RunWorkers = None,
    seed: _RootSeed = 0,
    set_: _RunSets = None,
    warmup_s: _Warmup = 0.0,
    scheduler: _Scheduler = None,
) -> None:
    """Find the smallest knob value whose SLA holds at --confidence: judged on the one-sided
    confidence bound of the KPI mean over the replications (upper for <=, lower for >=), not
    on the mean. Prints the curve and the answer; writes the sweep files, capacity.csv,
    capacity.json and capacity.png. Exit 0 also when no value meets the SLA (answer null)."""
    import pyarrow.parquet as pq

    from cardsim.capacity.plot import plot_capacity
    from cardsim.capacity.report import answer_text, format_curve, write_capacity
    from cardsim.capacity.search import evaluate, parse_sla, smallest_meeting

    processes = _local_workers(workers, scheduler)
    try:
        target = parse_sla(sla)
    except ValueError as exc:
        raise InputError(scenario, str(exc)) from None
    spec = _sweep_spec(scenario, [f"{knob}={values}"], set_, replications, seed, warmup_s)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in spec.axes[0].values):
        raise InputError(scenario, f"--values {values!r}: {knob} values must be numbers")
    with atomic_folder(out) as tmp:
        _run_sweep_with_bar(spec, tmp, processes, scheduler)
        runs = pq.read_table(tmp / "runs.parquet", columns=[knob, target.kpi]).to_pandas()
        samples = {k: g[target.kpi].to_numpy(float) for k, g in runs.groupby(knob, sort=True)}
        curve = evaluate(samples, target, confidence)
        answer = smallest_meeting(curve)
        write_capacity(tmp, curve, knob, target, confidence, answer)
        plot_capacity(curve, target, knob, confidence, answer, tmp / "capacity.png")
        _report(tmp)
    for line in format_curve(curve, knob):
        typer.echo(line)
    typer.echo(answer_text(knob, target, confidence, answer))
    typer.echo(
        f"wrote {out}/capacity.csv, capacity.json, capacity.png, report.html and the sweep files"
    )


@app.command()
@user_errors
def exposure(
    scenario: Annotated[Path, typer.Argument(metavar="SCENARIO", help="Scenario TOML file.")],
    out: Annotated[Path, typer.Option(metavar="DIR", help="Output folder.")],
    intervals: Annotated[
        str,
        typer.Option(
            metavar="I1,I2,...", help="Hotlist refresh intervals, a number with s, m, h or d each."
        ),
    ] = "1h,2h,4h,8h,24h",
    replications: Annotated[
        int,
        typer.Option(
            min=1, max=10_000, metavar="R", help="Days per interval, each with its own seed."
        ),
    ] = 5,
    seed: Annotated[
        int, typer.Option(min=0, metavar="N", help="Root seed of the replication seeds.")
    ] = 0,
    set_: _RunSets = None,
) -> None:
    """Hotlist exposure: the value terminals accept from lost cards (spent by their finders)
    before the hotlist reaches them, for each hotlist refresh interval. Every interval sees the
    same replication days (the same losses and finders). Writes exposure.csv (per interval:
    totals, mean, min and max per day, int64 fen), exposure_runs.csv (per day), exposure.png
    and summary.json (last)."""
    from cardsim.capacity.replicate import replication_seeds
    from cardsim.report.formats import plural
    from cardsim.sim.exposure import exposure_runs, parse_intervals, plot_exposure, summarize

    try:
        intervals_s = parse_intervals(intervals)
    except ValueError as exc:
        raise InputError(scenario, f"--intervals: {exc}") from None
    overrides = list(set_ or [])
    for s in intervals_s:  # each interval must be a valid terminals.hotlist_refresh_s
        load_scenario(scenario, [*overrides, f"terminals.hotlist_refresh_s={s}"])
    sc = load_scenario(scenario, overrides)
    seeds = replication_seeds(seed, replications)
    runs = exposure_runs(sc, intervals_s, seeds)
    table = summarize(runs)
    with atomic_folder(out) as tmp:
        table.to_csv(tmp / "exposure.csv", index=False)
        runs.to_csv(tmp / "exposure_runs.csv", index=False)
        plot_exposure(table, runs, sc.name, tmp / "exposure.png")
        doc = {
            "schema": "cardsim.exposure/1",
            "scenario": sc.model_dump(mode="json"),
            "seed": seed,
            "replication_seeds": seeds,
            "intervals": table.to_dict(orient="records"),
        }
        (tmp / "summary.json").write_text(json.dumps(doc, indent=1) + "\n")
    for row in table.itertuples():
        typer.echo(
            f"{row.interval:>6}: {row.exposure_fen_mean:>10,} fen a day on average "
            f"(min {row.exposure_fen_min:,}, max {row.exposure_fen_max:,}; "
            f"{row.finder_taps_accepted:,} of {plural(cast(int, row.finder_taps), 'finder tap')} "
            "accepted)"
        )
    typer.echo(f"wrote {out}/exposure.csv, exposure_runs.csv, exposure.png, summary.json")


def main() -> None:
    """Entry point of the `cardsim` script: usage errors print one line and exit 2 too."""
    use_system_allocator()
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("cardsim: interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if not message.strip():  # no arguments at all: the help was printed
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None and ctx.command_path else "cardsim"
        typer.echo(f"cardsim: error: {' '.join(message.split())} (see {command} --help)", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
