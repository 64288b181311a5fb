"""Scenario files: the shipped ones validate, bad ones fail in one line naming key and value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cardsim.errors import InputError
from cardsim.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "scenarios").glob("*.toml"))


def test_the_four_scenarios_are_shipped() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"small-town", "jiangyin-2009", "metro-peak", "clearing-outage"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenarios_validate_and_say_where_their_numbers_come_from(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    header = path.read_text().splitlines()[:4]
    assert all(line.startswith("#") for line in header)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text('name = "t"\n' + text)
    return path


@pytest.mark.parametrize(
    "text, overrides, fragment",
    [
        ("[bus]\nvehicels = 3\n", [], "unknown key bus.vehicels; allowed keys here: routes"),
        ("[bus]\nflat_fare_fen = 2.5\n", [], "bus.flat_fare_fen"),
        ("[bus]\nflat_fare_fen = 200.0\n", [], "bus.flat_fare_fen"),
        (
            "[clearing]\nworkers = 0\n",
            [],
            "clearing.workers: Input should be greater than or equal",
        ),
        ("", ["population.card_types.student=0.9"], "shares must sum to 1"),
        ("", ["clearing.outages_s=[[10.0, 5.0]]"], "end_s > start_s"),
        ("", ["bus.fare=zone"], "bus.fare"),
        ("", ["nonsense"], "use KEY.PATH=VALUE"),
        ("[bus\n", [], "not valid TOML"),
    ],
)
def test_bad_scenarios_name_key_value_and_rule(
    tmp_path: Path, text: str, overrides: list[str], fragment: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_scenario(path, overrides)
    message = str(info.value)
    assert fragment in message
    assert message.startswith(str(path))
    assert "\n" not in message


def test_set_overrides_nested_fields(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    scenario = load_scenario(
        path, ["clearing.workers=8", "demand.peak_multiplier=3", "bus.fare=distance"]
    )
    assert scenario.clearing.workers == 8
    assert scenario.demand.peak_multiplier == 3.0
    assert scenario.bus.fare == "distance"


def test_scenarios_are_frozen() -> None:
    scenario = Scenario(name="x")
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
        scenario.bus.vehicles = 3  # type: ignore[misc]


def test_validate_command(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "cardsim", "validate", str(SHIPPED[0])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and "ok" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "cardsim", "validate", str(SHIPPED[0]), "--set", "bike.docks=-1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "bike.docks" in bad.stderr
    assert "Traceback" not in bad.stderr
