"""The `cardsim` command line: a thin layer over the library. Bad input exits 2 in one line."""

from __future__ import annotations

import functools
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from tqdm import tqdm

from cardsim.errors import InputError
from cardsim.records.codes import Domain
from cardsim.records.keys import load_registry
from cardsim.records.log import LogReader, write_log
from cardsim.results.atomic import atomic_folder
from cardsim.results.settlement_files import write_settlement
from cardsim.scenario import load_scenario
from cardsim.settlement.fees import FeeSchedule
from cardsim.settlement.kernel import settle as settle_log
from cardsim.settlement.params import SettlementParams, load_params

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    help="cardsim: a city's multi-function citizen card, from tap to settlement.",
)
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Turn InputError into `cardsim: error: FILE: what is wrong` and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
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
        int, typer.Option(min=1, max=200_000_000, help="Records in the synthetic peak-day log.")
    ] = 1_000_000,
    batch_size: Annotated[
        int, typer.Option(min=1, max=65_536, help="Typical records per upload batch.")
    ] = 1_000,
    terminals: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Terminals uploading.")
    ] = 20_000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Settlement threads.")] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the synthetic log.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Keep the log here: DIR/records/ and DIR/keys.json.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Settle a synthetic peak-day log (about 1 % repeated uploads, a few tampered and forged
    records) and compare its speed with the crypto floor: SHA-256 over the same bytes plus one
    Ed25519 verification per batch, measured in the same run."""
    from cardsim.bench import measure
    from cardsim.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(records=records, terminals=terminals, batch_size=batch_size, seed=seed)
    with tempfile.TemporaryDirectory() as scratch:
        folder = out or Path(scratch)
        if not as_json:
            typer.echo(f"seed {seed}: generating {records:,} records...", err=True)
        day = generate(spec)
        with atomic_folder(folder) as tmp:
            write_log(tmp / "records", day.log)
            day.registry.save(tmp / "keys.json")
        with _bar(len(day.log.records), "settling") as bar:
            result = measure(folder / "records", day.log, day.registry, workers, bar.update)
    figures = result.as_json() | {"seed": seed, "batch_size": batch_size, "terminals": terminals}
    if as_json:
        typer.echo(json.dumps(figures))
        return
    for label, key, fmt in _BENCH_ROWS:
        typer.echo(f"{label:<34}{format(figures[key], fmt):>16}")


_BENCH_ROWS = [
    ("records", "records", ","),
    ("batches", "batches", ","),
    ("workers", "workers", "d"),
    ("settle seconds", "seconds", ".3f"),
    ("records/s", "records_per_s", ","),
    ("crypto floor records/s", "floor_records_per_s", ","),
    ("ratio to floor", "ratio_to_floor", ".3f"),
    ("floor incl. TAC check records/s", "floor_plus_tac_records_per_s", ","),
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


@app.command()
@user_errors
def settle(
    log: Annotated[
        Path,
        typer.Argument(
            help="Record log folder (records.parquet and "
            "batches.parquet; see docs/record-format.md)."
        ),
    ],
    keys: Annotated[Path, typer.Option(help="Key registry (keys.json).")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    workers: Annotated[int, typer.Option(min=1, max=64, help="Settlement threads.")] = 1,
    cutoff_ms: Annotated[
        int | None,
        typer.Option(
            help="Day cut-off, clearing-centre clock in ms since the Unix epoch: batches uploaded "
            "later are pending. Default: the log's settlement-params.json, else none."
        ),
    ] = None,
    fee_bp: Annotated[
        list[str] | None,
        typer.Option(
            help="Fee rate DOMAIN=BP (repeatable), e.g. pos=60. Default: the log's "
            "settlement-params.json, else bus=50, pos=60, others 0."
        ),
    ] = None,
) -> None:
    """Settle any log in the documented format: writes settlement.csv, rejects.parquet,
    alerts.parquet, booked.parquet and summary.json (written last). Exit 0 when it settled:
    rejects are data, not failures."""
    registry = load_registry(keys)
    reader = LogReader(log)
    params = load_params(log) or SettlementParams()
    fees = _fee_schedule(fee_bp or [], params.fees)
    cutoff_ms = params.cutoff_ms if cutoff_ms is None else cutoff_ms
    with _bar(reader.rows, "settling") as bar:
        result = settle_log(reader, registry, fees, cutoff_ms, workers, bar.update)
    with atomic_folder(out) as tmp:
        doc = write_settlement(tmp, result, reader, {"log": str(log), "cutoff_ms": cutoff_ms})
    counts = doc["records"]
    typer.echo(
        f"settled {counts['records']:,} records: {counts['booked']:,} booked, "
        f"{counts['rejected']:,} rejected, {counts['pending']:,} pending; "
        f"{len(result.alerts):,} alerts; net positions sum "
        f"{doc['net_positions_sum_fen']} fen"
    )
    typer.echo(
        f"wrote {out}/settlement.csv, rejects.parquet, alerts.parquet, booked.parquet, summary.json"
    )


@app.command()
@user_errors
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file (see scenarios/).")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    seed: Annotated[int, typer.Option(min=0, help="The run's one seed.")] = 1,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a scenario field, KEY.PATH=VALUE (repeatable), e.g. clearing.workers=4.",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Settlement threads.")] = 1,
) -> None:
    """Simulate one city day and write DIR/records/ (the signed log), keys.json,
    settlement.csv, rejects and alerts, by_domain.csv, by_hour.csv and summary.json (last)."""
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
        f"{sc.name}, seed {seed}: {k['transactions_total']:,} transactions, "
        f"{k['records_booked']:,} booked, {k['records_pending']:,} pending, "
        f"{k['records_rejected']:,} rejected, {k['declines_total']:,} declines"
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
    typer.echo(f"wrote {out}/")


@app.command()
@user_errors
def validate(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field before checking, KEY.PATH=VALUE."),
    ] = None,
) -> None:
    """Check a scenario file: every key known, every value within its bounds."""
    sc = load_scenario(scenario, set_ or [])
    typer.echo(
        f"{scenario}: ok ({sc.name}: {sc.population.cards:,} cards, "
        f"{sc.bus.vehicles:,} buses, {sc.clearing.workers} clearing workers)"
    )


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


def _run_sweep_with_bar(spec: Any, folder: Path, workers: int) -> dict[str, Any]:
    from cardsim.capacity.sweep import run_sweep

    with tqdm(
        total=spec.runs, desc="sweep", unit="run", leave=False, disable=None, file=sys.stderr
    ) as bar:
        return run_sweep(spec, folder, workers, lambda: bar.update(1))


def _no_scheduler(scheduler: str | None) -> None:
    if scheduler is not None:
        raise InputError(
            "--scheduler", "distributed runs (Dask) are not implemented yet; use --workers N"
        )


_SET_HELP = "Override a scenario field for every run, KEY.PATH=VALUE (repeatable)."
_WARMUP_HELP = (
    "Warm-up (s after midnight): tap-to-cleared percentiles count only records tapped from "
    "then on; the other KPIs cover the whole day."
)


@app.command()
@user_errors
def sweep(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
    vary: Annotated[
        list[str],
        typer.Option(
            help="A varied field, KEY.PATH=V1,V2,... (repeatable; the grid is the product)."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option(help="Output folder (not needed with --only).")
    ] = None,
    replications: Annotated[int, typer.Option(min=1, max=10_000, help=_REPLICATIONS_HELP)] = 5,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Runs at once, in processes.")] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Root seed of the replication streams.")] = 0,
    set_: Annotated[list[str] | None, typer.Option("--set", help=_SET_HELP)] = None,
    warmup_s: Annotated[float, typer.Option(min=0.0, max=86_400.0, help=_WARMUP_HELP)] = 0.0,
    only: Annotated[
        int | None,
        typer.Option(min=0, help="Redo one run id alone and print its row as JSON (no files)."),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler tcp://host:port (not implemented yet).")
    ] = None,
) -> None:
    """Run every grid point of --vary times --replications and write DIR/runs.csv and
    runs.parquet (one row per run: run_id, point, replication, seed, the varied fields, every
    KPI; streamed in run-id order), summary.csv and summary.json (per point, the mean and
    95 % CI half-width of every numeric KPI; written last). Same command, same bytes, whatever
    --workers."""
    from cardsim.capacity.sweep import run_by_id

    _no_scheduler(scheduler)
    spec = _sweep_spec(scenario, vary, set_, replications, seed, warmup_s)
    if only is not None:
        if only >= spec.runs:
            raise InputError(scenario, f"--only {only}: run ids are 0..{spec.runs - 1}")
        typer.echo(json.dumps(run_by_id(spec, only)))
        return
    if out is None:
        raise InputError(scenario, "--out is required (unless --only)")
    typer.echo(f"seed {seed}: {spec.runs:,} runs on {workers} worker(s)", err=True)
    with atomic_folder(out) as tmp:
        doc = _run_sweep_with_bar(spec, tmp, workers)
    typer.echo(
        f"{len(doc['points'])} points x {replications} replications = {spec.runs} runs; "
        f"replication seeds {doc['replication_seeds']}"
    )
    typer.echo(f"wrote {out}/runs.csv, runs.parquet, summary.csv, summary.json")


@app.command()
@user_errors
def capacity(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
    knob: Annotated[str, typer.Option(help="A numeric scenario field, e.g. clearing.workers.")],
    values: Annotated[str, typer.Option(help="Knob values to try, V1,V2,..., e.g. 1,2,4,8.")],
    sla: Annotated[
        str, typer.Option(help="Service level KPI<=LIMIT or KPI>=LIMIT, in the KPI's unit.")
    ],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    confidence: Annotated[
        float,
        typer.Option(min=0.5, max=0.999, help="One-sided confidence that the SLA holds."),
    ] = 0.95,
    replications: Annotated[int, typer.Option(min=2, max=10_000, help=_REPLICATIONS_HELP)] = 5,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Runs at once, in processes.")] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Root seed of the replication streams.")] = 0,
    set_: Annotated[list[str] | None, typer.Option("--set", help=_SET_HELP)] = None,
    warmup_s: Annotated[float, typer.Option(min=0.0, max=86_400.0, help=_WARMUP_HELP)] = 0.0,
) -> None:
    """Find the smallest knob value whose SLA holds at --confidence: judged on the one-sided
    confidence bound of the KPI mean over the replications (upper for <=, lower for >=), not
    on the mean. Prints the curve and the answer; writes the sweep files, capacity.csv,
    capacity.json and capacity.png. Exit 0 also when no value meets the SLA (answer null)."""
    import pyarrow.parquet as pq

    from cardsim.capacity.plot import plot_capacity
    from cardsim.capacity.report import answer_text, format_curve, write_capacity
    from cardsim.capacity.search import evaluate, parse_sla, smallest_meeting

    try:
        target = parse_sla(sla)
    except ValueError as exc:
        raise InputError(scenario, str(exc)) from None
    spec = _sweep_spec(scenario, [f"{knob}={values}"], set_, replications, seed, warmup_s)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in spec.axes[0].values):
        raise InputError(scenario, f"--values {values!r}: {knob} values must be numbers")
    with atomic_folder(out) as tmp:
        _run_sweep_with_bar(spec, tmp, workers)
        runs = pq.read_table(tmp / "runs.parquet", columns=[knob, target.kpi]).to_pandas()
        samples = {k: g[target.kpi].to_numpy(float) for k, g in runs.groupby(knob, sort=True)}
        curve = evaluate(samples, target, confidence)
        answer = smallest_meeting(curve)
        write_capacity(tmp, curve, knob, target, confidence, answer)
        plot_capacity(curve, target, knob, confidence, answer, tmp / "capacity.png")
    for line in format_curve(curve, knob):
        typer.echo(line)
    typer.echo(answer_text(knob, target, confidence, answer))
    typer.echo(f"wrote {out}/capacity.csv, capacity.json, capacity.png and the sweep files")


def main() -> None:
    """Entry point of the `cardsim` script: usage errors print one line and exit 2 too."""
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
        typer.echo(f"cardsim: error: {' '.join(message.split())} (see cardsim --help)", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
