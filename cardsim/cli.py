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
