"""Bad-input fuzzing: mutated scenario files, record logs and key registries fed to the CLI.

Whatever the mutation, `cardsim` either accepts the input or prints one line naming the file
(and the field, for scenarios) and exits 2: never a traceback, never a half-written output.
The CLI runs in-process through its real entry point, so each case costs milliseconds.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from cardsim.cli import main
from cardsim.records.log import write_log
from tests.conftest import small_day

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "small-town.toml"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    """Run `cardsim ARGS` in-process; the exit code and stderr. Any other exception escapes."""
    capsys.readouterr()
    argv = sys.argv
    sys.argv = ["cardsim", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = argv
    if currently_in_test_context():  # --hypothesis-show-statistics shows the exit codes
        event(f"exit code {code}")
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *names: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("cardsim: error: "), err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], (name, err)


# ---------------------------------------------------------------------------------------------
# Scenario files
# ---------------------------------------------------------------------------------------------


def _leaves(doc: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in doc.items():
        path = f"{prefix}{key}"
        out += _leaves(value, path + ".") if isinstance(value, dict) else [path]
    return out


BASE = tomllib.loads(SCENARIO.read_text())
LEAVES = _leaves(BASE)
ODD_VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.booleans(),
    st.lists(st.integers(-5, 5), max_size=3),
    st.just({"x": 1}),
)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)  # JSON spelling of these is valid TOML


def _dump(doc: dict[str, Any], prefix: str = "") -> str:
    plain = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    text = "\n".join(plain) + "\n"
    for key, value in doc.items():
        if isinstance(value, dict):
            text += f"\n[{prefix}{key}]\n" + _dump(value, f"{prefix}{key}.")
    return text


def _mutated(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(doc))
    *parents, leaf = path.split(".")
    node = out
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return out


_DELETE = object()


def test_dumped_base_scenario_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.toml"
    path.write_text(_dump(BASE))
    code, err = cli(capsys, "validate", path)
    assert code == 0, err


@FUZZ
@given(field=st.sampled_from(LEAVES), value=st.one_of(ODD_VALUES, st.just(_DELETE)))
def test_scenario_field_mutations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: Any
) -> None:
    path = tmp_path / "fuzzed.toml"
    path.write_text(_dump(_mutated(BASE, field, value)))
    code, err = cli(capsys, "validate", path)
    if code != 0:
        assert_one_line_error(code, err, str(path), field.rsplit(".", 1)[-1])


@FUZZ
@given(
    section=st.sampled_from(["", *sorted(k for k, v in BASE.items() if isinstance(v, dict))]),
    key=st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True),
)
def test_unknown_keys_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, key: str
) -> None:
    known = BASE if not section else BASE[section]
    if key in known:
        return
    path = tmp_path / "extra.toml"
    path.write_text(_dump(_mutated(BASE, f"{section}.{key}" if section else key, 1)))
    code, err = cli(capsys, "validate", path)
    assert_one_line_error(code, err, str(path), key)


@FUZZ
@given(data=st.data())
def test_scenario_byte_mutations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    raw = bytearray(SCENARIO.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    path = tmp_path / "bytes.toml"
    path.write_bytes(bytes(raw))
    code, err = cli(capsys, "validate", path)
    if code != 0:
        assert_one_line_error(code, err, str(path))


def test_override_mutations_name_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for bad in ["clearing.workers=-1", "clearing.nope=1", "bus.vehicles=", "=3", "seed"]:
        code, err = cli(capsys, "validate", SCENARIO, "--set", bad)
        assert_one_line_error(code, err)


# ---------------------------------------------------------------------------------------------
# Record logs and key registries
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("log")
    day = small_day(seed=5, records=200, terminals=4, batch_size=25)
    write_log(root / "records", day.log)
    day.registry.save(root / "keys.json")
    return root


def _copy(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("records/records.parquet", "records/batches.parquet", "keys.json"):
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        (dst / name).write_bytes((src / name).read_bytes())


def _settle(capsys: pytest.CaptureFixture[str], root: Path) -> tuple[int, str, Path]:
    out = root / "out"
    code, err = cli(capsys, "settle", root / "records", "--keys", root / "keys.json", "--out", out)
    return code, err, out


def _check(code: int, err: str, out: Path) -> None:
    """Settled (a complete output folder) or refused in one line (no output at all)."""
    if code == 0:
        assert (out / "summary.json").exists()
    else:
        assert_one_line_error(code, err)
        assert not out.exists(), "a refused input left an output folder behind"


def test_good_log_settles(
    good_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _copy(good_log, tmp_path)
    code, err, _ = _settle(capsys, tmp_path)
    assert code == 0, err


@FUZZ
@given(
    name=st.sampled_from(["records/records.parquet", "records/batches.parquet", "keys.json"]),
    data=st.data(),
)
def test_log_byte_mutations(
    good_log: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    name: str,
    data: st.DataObject,
) -> None:
    root = tmp_path_factory.mktemp("bytes")
    _copy(good_log, root)
    raw = bytearray((root / name).read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] ^= data.draw(st.integers(1, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    (root / name).write_bytes(bytes(raw))
    code, err, out = _settle(capsys, root)
    _check(code, err, out)
    if code != 0:
        assert name.rsplit("/", 1)[-1] in err


ODD_COLUMNS = st.sampled_from(["drop", "rename", "to_string", "to_float", "negate", "huge"])


@FUZZ
@given(
    name=st.sampled_from(["records/records.parquet", "records/batches.parquet"]),
    column=st.integers(0, 20),
    how=ODD_COLUMNS,
)
def test_log_column_mutations(
    good_log: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    name: str,
    column: int,
    how: str,
) -> None:
    root = tmp_path_factory.mktemp("columns")
    _copy(good_log, root)
    table = pq.read_table(root / name)
    i = column % table.num_columns
    field = table.schema.field(i)
    table = _mutate_column(table, i, how)
    pq.write_table(table, root / name)
    code, err, out = _settle(capsys, root)
    _check(code, err, out)
    if code != 0:
        assert name.rsplit("/", 1)[-1] in err
        if how in ("drop", "rename", "to_string", "to_float"):
            assert field.name in err, err


def _mutate_column(table: pa.Table, i: int, how: str) -> pa.Table:
    field, column = table.schema.field(i), table.column(i)
    if how == "drop":
        return table.remove_column(i)
    if how == "rename":
        return table.rename_columns([*table.column_names[:i], "x", *table.column_names[i + 1 :]])
    if how == "to_string":
        return table.set_column(i, field.name, pa.array([str(v) for v in column.to_pylist()]))
    if how == "to_float":
        if not pa.types.is_integer(field.type):
            return table
        return table.set_column(i, field.name, column.cast(pa.float64(), safe=False))
    if not pa.types.is_integer(field.type):
        return table
    values = np.asarray(column.to_numpy(zero_copy_only=False))
    if how == "negate" and pa.types.is_signed_integer(field.type):
        values = -values
    else:
        values = np.full_like(values, np.iinfo(values.dtype).max)
    return table.set_column(i, field, pa.array(values, type=field.type))


@pytest.mark.parametrize("command", ["run", "settle", "sweep", "exposure", "bench"])
def test_an_output_path_that_cannot_be_a_folder_is_refused_before_any_work(
    command: str, good_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    args: dict[str, list[object]] = {
        "run": ["run", SCENARIO],
        "settle": ["settle", good_log / "records", "--keys", good_log / "keys.json"],
        "sweep": ["sweep", SCENARIO, "--vary", "clearing.workers=1,2"],
        "exposure": ["exposure", SCENARIO],
        "bench": ["bench", "--records", "1000"],
    }
    for out in (taken, Path("/proc/cardsim-out")):
        code, err = cli(capsys, *args[command], "--out", out)
        assert_one_line_error(code, err, str(out))
    assert taken.read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
