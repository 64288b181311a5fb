"""Plots and report.html: the series kept by a run, the figures, the page, `cardsim report`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cardsim.errors import InputError
from cardsim.report import write_report
from cardsim.report.folder import SERIES_TABLES
from cardsim.report.formats import duration, number, plural, yuan
from cardsim.report.plots import PLOTS
from cardsim.report.series import balance_histogram, clearing_bins, latency_quantiles
from cardsim.report.settlement import by_group
from cardsim.report.steps import bin_average, bin_maximum, level_at, steps_from_deltas
from cardsim.sim.clearing import ClearingConfig, simulate_clearing
from cardsim.sim.world import DAY_START_MS
from tests.conftest import TINY_TOWN

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "small-town.toml"
SMALL = (
    "population.cards=2000",
    "bike.trips=300",
    "hospital.patients=200",
    "issuance.applications=30",
    "pos.shops.purchases=400",
    "pos.supermarkets.purchases=200",
    "pos.taxis.purchases=200",
)
TINY = (*TINY_TOWN, "clearing.batch_service_s=5")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cardsim(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardsim", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def sets(items: tuple[str, ...]) -> list[str]:
    return [part for item in items for part in ("--set", item)]


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "town"
    done = cardsim("run", SCENARIO, "--out", out, "--seed", "3", *sets(SMALL))
    assert done.returncode == 0, done.stderr
    return out


# Step functions -------------------------------------------------------------------------------


def test_steps_net_changes_at_one_instant() -> None:
    times, levels = steps_from_deltas(np.array([1.0, 2.0, 2.0, 3.0]), np.array([1, -1, 1, -1]))
    assert times.tolist() == [1.0, 2.0, 3.0]
    assert levels.tolist() == [1, 1, 0]  # released and taken again at 2.0: never idle


def test_bin_average_and_maximum_of_a_hand_made_step_function() -> None:
    # level 0 until 5, 4 on [5, 15), 2 on [15, 30), 0 from 30
    times, levels = np.array([5.0, 15.0, 30.0]), np.array([4, 2, 0])
    edges = np.array([0.0, 10.0, 20.0, 40.0])
    assert bin_average(times, levels, edges).tolist() == pytest.approx([2.0, 3.0, 1.0])
    assert bin_maximum(times, levels, edges).tolist() == [4, 4, 2]
    assert level_at(times, levels, np.array([0.0, 5.0, 14.9, 30.0]), initial=7).tolist() == [
        7,
        4,
        4,
        0,
    ]
    assert bin_average(np.zeros(0), np.zeros(0, np.int64), edges, initial=3).tolist() == [3, 3, 3]


def test_clearing_bins_average_to_the_runs_utilisation_and_queue() -> None:
    rng = np.random.default_rng(5)
    arrival = np.sort(rng.uniform(0, 80_000, 4000))
    config = ClearingConfig(workers=2, batch_service_s=30.0, record_service_s=0.0)
    result = simulate_clearing(arrival, np.ones(4000, np.int64), config, rng, 86_400.0)
    table = clearing_bins(result, workers=2)
    assert len(table) == 288  # everything cleared within the day: 5-minute bins of 24 h
    assert table["utilization"].mean() == pytest.approx(result.utilization, abs=1e-4)
    assert table["queue_mean_batches"].mean() == pytest.approx(
        result.mean_queue_length(0.0, 86_400.0), abs=1e-3
    )
    assert (table["queue_max_batches"] >= table["queue_mean_batches"]).all()
    assert table["queue_max_batches"].max() == result.queue_lengths.max()


# Tables ---------------------------------------------------------------------------------------


def test_balance_histogram_counts_every_card_once_in_round_fen_bands() -> None:
    rng = np.random.default_rng(1)
    opening = rng.exponential(5_000, 10_000).astype(np.int64)
    closing = np.r_[opening[:-1], 10_000_000]  # one rich card lands in the last band
    table = balance_histogram(opening, closing)
    width = int(table["high_fen"].iloc[0] - table["low_fen"].iloc[0])
    assert re.fullmatch(r"[125]0*", str(width))
    assert table["cards_opening"].sum() == table["cards_closing"].sum() == 10_000
    assert table["overflow"].tolist() == [0] * (len(table) - 1) + [1]
    assert table["cards_closing"].iloc[-1] >= 1
    assert table["low_fen"].dtype == np.int64
    assert len(table) <= 41


def test_latency_quantiles_agree_with_the_kpi_percentiles() -> None:
    latency = np.random.default_rng(2).lognormal(5, 2, 50_000)
    latency[:10] = np.nan  # not cleared (M/M/c mode keeps nan)
    table = latency_quantiles(latency).set_index("quantile")
    finite = latency[np.isfinite(latency)]
    for q in (0.5, 0.95, 0.99):
        assert table.loc[q, "latency_s"] == pytest.approx(np.percentile(finite, q * 100), abs=1e-3)
    assert latency_quantiles(np.full(3, np.nan)).empty


def test_yuan_is_exact_from_integer_fen() -> None:
    assert yuan(-1_234_567) == "-12,345.67"
    assert yuan(5) == "0.05"
    assert yuan(-5) == "-0.05"
    assert yuan(np.int64(9_007_199_254_740_993)) == "90,071,992,547,409.93"  # past float range
    assert number(3.0) == "3" and number(None) == "n/a" and number(float("nan")) == "n/a"
    assert number(29_490.84) == "29,490.8" and "e" not in number(1.5e7)
    assert duration(27_745.0) == "7.71 h" and duration(42.0) == "42 s"


def test_plural_agrees_with_the_count() -> None:
    assert plural(1, "alert") == "1 alert"
    assert plural(0, "alert") == "0 alerts"
    assert plural(1_200, "record") == "1,200 records"
    assert plural(np.int64(1), "finder tap") == "1 finder tap"  # numpy counts from tables
    assert plural(1, "bus", "buses") == "1 bus" and plural(3, "bus", "buses") == "3 buses"


def test_settlement_groups_keep_every_fen() -> None:
    settlement = pd.DataFrame(
        {
            "participant": [0, 16, 17, 99],
            "role": ["issuer_float", "payee", "payee", "payee"],
            "received_fen": [0, 500, 700, 3],
            "paid_fen": [1203, 0, 0, 0],
            "fee_fen": [0, 5, 7, 0],
            "net_fen": [-1203, 495, 693, 3],
        }
    )
    participants = pd.DataFrame(
        {"participant": [0, 16, 17], "group": ["issuer_float", "bus", "bus"]}
    )
    groups = by_group(settlement, participants)
    assert groups["label"].tolist() == ["issuer float", "bus companies (2)", "other payees"]
    for column in ("received_fen", "paid_fen", "fee_fen", "net_fen"):
        assert groups[column].sum() == settlement[column].sum()
    assert groups.set_index("group").loc["bus", "net_fen"] == 1188


# The run's outputs ------------------------------------------------------------------------------


def test_run_writes_series_plots_and_report(town: Path) -> None:
    for name in SERIES_TABLES:
        assert (town / "series" / name).is_file(), name
    for spec in PLOTS:
        png = (town / "plots" / spec.name).read_bytes()
        assert png[:8] == PNG_MAGIC, spec.name
        # No text chunk (software version, creation time): equal data give equal bytes.
        assert b"tEXt" not in png and b"iTXt" not in png, spec.name
    assert (town / "report.html").is_file()


def test_series_agree_with_the_runs_kpis(town: Path) -> None:
    kpis = json.loads((town / "summary.json").read_text())["kpis"]
    clearing = pd.read_csv(town / "series" / "clearing.csv")
    # The KPI divides by the day or, when uploads go on after midnight, up to the last upload.
    uploaded_ms = pd.read_parquet(town / "records" / "batches.parquet", columns=["uploaded_ms"])
    horizon_s = max(86_400.0, (uploaded_ms["uploaded_ms"].max() - DAY_START_MS) / 1000.0)
    busy_s = (clearing["busy_workers_mean"] * 300.0).sum()
    workers = json.loads((town / "summary.json").read_text())["scenario"]["clearing"]["workers"]
    assert busy_s / (workers * horizon_s) == pytest.approx(kpis["clearing_utilization"], abs=1e-4)
    latency = pd.read_csv(town / "series" / "latency_quantiles.csv").set_index("quantile")
    assert latency.loc[0.95, "latency_s"] == pytest.approx(kpis["tap_to_cleared_p95_s"], abs=2e-3)
    waits = pd.read_csv(town / "series" / "hospital_waits.csv").set_index("window")
    assert waits.loc["registration", "wait_mean_s"] == pytest.approx(
        kpis["hospital_registration_wait_mean_s"], abs=2e-3
    )
    balances = pd.read_csv(town / "series" / "balances.csv")
    cards = json.loads((town / "summary.json").read_text())["scenario"]["population"]["cards"]
    assert balances["cards_closing"].sum() == cards + kpis["cards_issued"]


class _Page(HTMLParser):
    """Collects the tags and attributes that decide whether a page is self-contained."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        for name in ("href", "src"):
            if tag != "img" and values.get(name):
                self.links.append(values[name] or "")


def test_report_is_one_self_contained_page(town: Path) -> None:
    text = (town / "report.html").read_text("utf-8")
    page = _Page()
    page.feed(text)
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert len(page.images) == len(PLOTS)
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert all(link.startswith("#") for link in page.links), page.links
    assert "http://" not in text and "https://" not in text
    summary = json.loads((town / "summary.json").read_text())
    assert f"seed <strong>{summary['seed']}</strong>" in text
    for name in (*summary["kpis"], *summary["settlement"]["outcomes"]):
        assert name in text, name
    assert "all hold" in text  # the conservation check
    total = pd.read_csv(town / "settlement.csv")["received_fen"].sum()
    assert yuan(int(total)) in text  # the settlement total, exact


def test_report_command_rebuilds_the_same_bytes(town: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(town, copy)
    shutil.rmtree(copy / "plots")
    (copy / "report.html").unlink()
    done = cardsim("report", copy)
    assert done.returncode == 0, done.stderr
    assert (copy / "report.html").read_bytes() == (town / "report.html").read_bytes()
    for spec in PLOTS:
        assert (copy / "plots" / spec.name).read_bytes() == (
            town / "plots" / spec.name
        ).read_bytes()


def test_report_escapes_scenario_text_and_notes_missing_series(town: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(town, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["scenario"]["description"] = '<img src="https://example.org/x.png">'
    (copy / "summary.json").write_text(json.dumps(summary))
    (copy / "series" / "bike_stock.csv").unlink()
    text = write_report(copy).read_text("utf-8")
    assert "&lt;img src=&#34;https://example.org/x.png&#34;&gt;" in text
    assert '<img src="https://' not in text
    assert "series/bike_stock.csv not in the folder" in text
    assert text.count("<img ") == len(PLOTS) - 1


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "no summary.json"),
        ("{not json", "unreadable JSON"),
        ('{"schema": "cardsim.settlement-summary/1"}', "is not a cardsim run, sweep or capacity"),
    ],
)
def test_a_folder_that_is_no_output_is_refused(
    content: str | None, says: str, tmp_path: Path
) -> None:
    if content is not None:
        (tmp_path / "summary.json").write_text(content)
    with pytest.raises(InputError, match=says):
        write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_report_command_on_a_folder_that_is_no_output_fails_in_one_line(tmp_path: Path) -> None:
    done = cardsim("report", tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cardsim: error: ")
    assert str(tmp_path) in lines[0] and "Traceback" not in done.stderr


def test_capacity_and_sweep_folders_get_their_report(tmp_path: Path) -> None:
    out = tmp_path / "cap"
    done = cardsim(
        "capacity",
        SCENARIO,
        *sets(TINY),
        "--knob",
        "clearing.workers",
        "--values",
        "1,3",
        "--sla",
        "clearing_wait_mean_s<=30",
        "--replications",
        "2",
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr
    text = (out / "report.html").read_text("utf-8")
    assert "Capacity: clearing.workers" in text
    assert text.count('<img src="data:image/png;base64,') == 1  # capacity.png, embedded
    assert "clearing.workers=1" in text and "clearing.workers=3" in text
    assert "clearing_wait_mean_s" in text and "±" in text
    # The same folder without the capacity files is a plain sweep: the summary table only.
    sweep = tmp_path / "sweep"
    shutil.copytree(out, sweep)
    for name in ("capacity.json", "capacity.csv", "capacity.png", "report.html"):
        (sweep / name).unlink()
    text = write_report(sweep).read_text("utf-8")
    assert "cardsim sweep:" in text and "Capacity" not in text and "<img" not in text
    assert "Summary per grid point" in text
