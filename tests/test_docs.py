"""The generated references: docs/scenario-reference.md and docs/output-schema.md equal their
generators' output, every scenario field is described with its unit, and every command writes
exactly the files, columns and keys the output schema lists (cardsim/results/outputs.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cardsim import schema_docs
from cardsim.capacity.replicate import KPI_NAMES
from cardsim.cli import app
from cardsim.results.conformance import check_folder
from cardsim.results.outputs import ALERTS, COMMANDS, REJECTS
from cardsim.results.schema import KPIS, OutputFile
from cardsim.results.settlement_files import alerts_frame, rejects_frame
from cardsim.settlement.result import ALERT_DTYPE, POSITION_DTYPE, Settlement
from tests.conftest import TINY_TOWN
from tests.ledger_days import build_days

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "small-town.toml"
TINY = TINY_TOWN
"""A town that runs in a fraction of a second and still uses every domain."""
REGENERATE = "regenerate it: python -m cardsim.schema_docs {} > docs/{}"


def cardsim(*args: str | Path) -> None:
    """Run a command in this process: the commands share their imports, which cost more than
    the tiny runs themselves."""
    sets = [part for item in TINY for part in ("--set", item)] if args[0] != "settle" else []
    done = CliRunner().invoke(app, [*map(str, args), *sets])
    assert done.exit_code == 0, done.output


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per command: run, settle (of the run), a two-day ledger, sweep, capacity
    and exposure.

    The run's cut-off falls before the buses' first depot upload, so that rejects.parquet holds
    pending records and alerts.parquet counter gaps (empty tables would hide their types), and
    it injects a fault and a fraud, so that it writes what only such days write.
    """
    base = tmp_path_factory.mktemp("outputs")
    run = base / "run"
    day = (
        "clearing.cutoff_s=50000",
        "faults.repeat_upload_share=0.02",
        "fraud.fabricated_records=2",
    )
    cardsim("run", SCENARIO, "--out", run, "--seed", "3", *(f"--set={s}" for s in day))
    cardsim("settle", run / "records", "--keys", run / "keys.json", "--out", base / "settle")
    close_two_days(base / "ledger-input", base / "settle --ledger")
    cardsim(
        "sweep",
        SCENARIO,
        "--vary",
        "clearing.workers=2",
        "--replications",
        "1",
        "--out",
        base / "sweep",
    )
    cardsim(
        "capacity",
        SCENARIO,
        "--knob",
        "clearing.workers",
        "--values",
        "1,2",
        "--sla",
        "clearing_wait_mean_s<=60",
        "--replications",
        "2",
        "--out",
        base / "capacity",
    )
    cardsim(
        "exposure",
        SCENARIO,
        "--intervals",
        "1h,4h",
        "--replications",
        "2",
        "--out",
        base / "exposure",
    )
    return base


def close_two_days(inputs: Path, ledger: Path) -> None:
    """Day 1 with records pending at its cut-off (carried), no corrections (reversals.csv has
    only its header); day 2 with late and re-sent records, and a correction reversed and one
    not, so that every column of reversals.csv holds values and `ledger` no nulls."""
    days = build_days(inputs)
    keys = inputs / "keys.json"
    for day, cutoff in enumerate(days.cutoffs[:2], start=1):
        more: list[str | Path] = []
        if day == 2:
            booked = pd.read_parquet(ledger / "days" / "0001" / "booked.parquet")
            terminal, serial = booked["terminal_id"].iloc[0], booked["terminal_serial"].iloc[0]
            fix = inputs / "corrections.csv"
            fix.write_text(
                f"terminal_id,terminal_serial,reference\n{terminal},{serial},dispute-1\n9999,1,\n"
            )
            more = ["--corrections", fix]
        day_log = inputs / f"day{day}"
        cardsim(
            "settle", day_log, "--keys", keys, "--ledger", ledger, "--cutoff-ms", str(cutoff), *more
        )
    reversals = pd.read_csv(ledger / "days" / "0002" / "reversals.csv")
    assert list(reversals["outcome_name"]) == ["REVERSED", "NOT_BOOKED"]
    assert sorted(p.name for p in (ledger / "carry").iterdir()) == ["0001", "0002"]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_output_is_in_the_schema_and_back(outputs: Path, command: str) -> None:
    params = ["clearing.workers"] if command in ("sweep", "capacity") else []
    problems = check_folder(outputs / command, COMMANDS[command], params)
    assert not problems, (
        f"cardsim {command} output and cardsim/results/outputs.py disagree:\n  "
        + "\n  ".join(problems)
        + "\nlist the output in cardsim/results/outputs.py, then "
        + REGENERATE.format("outputs", "output-schema.md")
    )


def test_json_documents_name_their_schema(outputs: Path) -> None:
    for command, files in COMMANDS.items():
        for file in files:
            if file.schema:
                written = sorted((outputs / command).glob(file.path))
                assert written, (command, file.path)
                for path in written:
                    assert json.loads(path.read_text())["schema"] == file.schema, (command, path)


def test_the_checker_sees_every_kind_of_drift(outputs: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(outputs / "run", run)
    before = set(check_folder(run, COMMANDS["run"]))  # compare only what the edits change
    (run / "extra.csv").write_text("a\n1\n")
    (run / "by_domain.csv").unlink()
    settlement = pd.read_csv(run / "settlement.csv")
    settlement.assign(role=1.5).rename(columns={"fee_fen": "fees"}).to_csv(
        run / "settlement.csv", index=False
    )
    summary = json.loads((run / "summary.json").read_text())
    summary["kpis"]["new_kpi"] = 1
    summary["seed"] = "one"
    del summary["conservation"]["loads_fen"]
    (run / "summary.json").write_text(json.dumps(summary))
    problems = set(check_folder(run, COMMANDS["run"])) - before
    assert problems == {
        "extra.csv: written but not in cardsim/results/outputs.py",
        "by_domain.csv: listed in cardsim/results/outputs.py but not written",
        "settlement.csv: fees written but not listed",
        "settlement.csv: fee_fen listed but not written",
        "settlement.csv: role is float64, listed as string",
        "summary.json: kpis.new_kpi written but not listed",
        "summary.json: seed is string, listed as integer",
        "summary.json: conservation.loads_fen listed but not written",
    }


def test_optional_files_may_be_missing(tmp_path: Path) -> None:
    files = (OutputFile("a.txt", "always"), OutputFile("plots/*.png", "some", when="asked"))
    (tmp_path / "a.txt").write_text("")
    assert check_folder(tmp_path, files) == []
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "load.png").write_bytes(b"")
    assert check_folder(tmp_path, files) == []
    (tmp_path / "plots" / "load.svg").write_bytes(b"")
    assert check_folder(tmp_path, files) == [
        "plots/load.svg: written but not in cardsim/results/outputs.py"
    ]


def test_empty_tables_keep_their_types(tmp_path: Path) -> None:
    nothing = Settlement(
        np.zeros(0, np.uint8),
        np.zeros(0, np.int64),
        np.zeros(0, ALERT_DTYPE),
        np.zeros(0, POSITION_DTYPE),
    )
    rejects_frame(nothing, SimpleNamespace(chunks=[])).to_parquet(tmp_path / "rejects.parquet")
    alerts_frame(nothing).to_parquet(tmp_path / "alerts.parquet")
    assert check_folder(tmp_path, (REJECTS, ALERTS)) == []


def test_the_kpi_table_is_the_simulations() -> None:
    assert tuple(k.name for k in KPIS) == KPI_NAMES


def test_run_summary_scenario_has_exactly_the_reference_fields(outputs: Path) -> None:
    def leaves(doc: dict[str, object], prefix: str = "") -> set[str]:
        out: set[str] = set()
        for key, value in doc.items():
            path = f"{prefix}{key}"
            out |= leaves(value, path + ".") if isinstance(value, dict) else {path}
        return out

    scenario = json.loads((outputs / "run" / "summary.json").read_text())["scenario"]
    documented = {f.path for s in schema_docs.scenario_sections() for f in s.fields}
    assert leaves(scenario) == documented


def test_every_scenario_field_has_a_description_and_a_unit() -> None:
    sections = list(schema_docs.scenario_sections())
    fields = [f for s in sections for f in s.fields]
    assert len(fields) > 80
    assert [s.path for s in sections if not s.description] == []
    assert [f.path for f in fields if not f.description] == [], "add a docstring to the field"
    assert [f.path for f in fields if not f.unit] == [], "add unit(...) to the field"
    assert all(f.unit != schema_docs.NOT_A_QUANTITY for f in fields if f.numeric)


def test_the_reference_shows_types_bounds_and_defaults() -> None:
    rows = {f.path: f for s in schema_docs.scenario_sections() for f in s.fields}
    cards = rows["population.cards"]
    assert (cards.type, cards.unit, cards.default) == ("integer", "cards", "`20000`")
    assert cards.bounds == "1 ≤ x ≤ 10,000,000"
    assert rows["pos.supermarkets.merchants"].default == "`20`"  # the parent's default wins
    assert rows["bus.fare"].type == "one of `flat`, `distance`"
    assert rows["bus.shift_end_s"].bounds == "each 0 ≤ x ≤ 604,800"
    assert rows["clearing.outages_s"].type == "list of [number, number]"
    assert rows["clearing.mmc_arrival_rate_per_s"].bounds == "0 < x ≤ 100,000"
    assert rows["name"].default == "required"


@pytest.mark.parametrize(
    ("document", "file"), [("scenario", "scenario-reference.md"), ("outputs", "output-schema.md")]
)
def test_committed_document_is_the_generators(document: str, file: str) -> None:
    committed = (ROOT / "docs" / file).read_text()
    assert committed == schema_docs.DOCUMENTS[document](), (
        f"docs/{file} is stale: " + REGENERATE.format(document, file)
    )


def test_generator_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert schema_docs.main(["outputs"]) == 0
    assert capsys.readouterr().out.startswith("# Output schema")
    assert schema_docs.main(["nonsense"]) == 2
    assert "usage" in capsys.readouterr().err
