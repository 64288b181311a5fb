"""The grid of a sweep: `--vary key=v1,v2,...` axes, their product, and their validation.

Every point of the grid is validated against the scenario before any run starts, so a typo
in a key or a value out of bounds costs one line and exit code 2, not a wasted sweep.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cardsim.errors import InputError
from cardsim.scenario import Scenario, load_scenario

MAX_POINTS = 10_000
"""A limit on the grid: beyond it a typo in a value list is likelier than a real plan."""


@dataclass(frozen=True)
class Axis:
    """One varied scenario field and the values it takes, in the order given."""

    key: str
    """Dotted scenario path, e.g. `clearing.workers`."""
    raw: tuple[str, ...]
    """The values as typed, passed on as `--set key=raw` overrides."""
    values: tuple[Any, ...]
    """The values as table cells (TOML-parsed; numbers typed as the scenario field is)."""


def parse_value(raw: str) -> Any:
    """A value as TOML reads it (`4` is an int, `0.5` a float, `true` a bool), else the text."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def parse_vary(spec: str, scenario: Path) -> Axis:
    """Parse `key=v1,v2,...` into an Axis; a malformed spec is an InputError."""
    key, sep, rest = spec.partition("=")
    key = key.strip()
    raws = tuple(part.strip() for part in rest.split(","))
    if not sep or not key or not all(raws):
        raise InputError(
            scenario, f"--vary {spec!r}: use KEY.PATH=V1,V2,..., e.g. clearing.workers=2,4,8"
        )
    if len(set(raws)) != len(raws):
        raise InputError(scenario, f"--vary {spec!r}: a value is listed twice")
    return Axis(key, raws, typed_cells(key, tuple(parse_value(raw) for raw in raws)))


def field_type(key: str) -> type | None:
    """The Python type of the scenario field at dotted `key` (int, float, ...); None when
    `key` names no plain field (a typo is reported when the grid is validated)."""
    model: type[BaseModel] = Scenario
    *tables, name = key.split(".")
    for part in tables:
        annotation = getattr(model.model_fields.get(part), "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    annotation = getattr(model.model_fields.get(name), "annotation", None)
    return annotation if isinstance(annotation, type) else None


def typed_cells(key: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Numbers as the scenario field types them: whole numbers for an int field (`2.0` is 2),
    floats for a float field (`1` is 1.0); other values as parsed.

    One column type per axis, so the Parquet schema does not depend on which run ends first:
    a numeric axis of a field of unknown type that mixes ints and floats is all floats.
    """
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return values
    kind = field_type(key)
    if kind is int and all(float(v).is_integer() for v in values):
        return tuple(int(v) for v in values)
    if kind is float or any(isinstance(v, float) for v in values):
        return tuple(float(v) for v in values)
    return values


def grid_points(axes: tuple[Axis, ...]) -> list[tuple[int, ...]]:
    """Index tuples of every point, first axis slowest (the order of run ids)."""
    return list(itertools.product(*(range(len(axis.raw)) for axis in axes)))


def point_overrides(axes: tuple[Axis, ...], point: tuple[int, ...]) -> list[str]:
    """The `--set` overrides that make one grid point."""
    return [f"{axis.key}={axis.raw[i]}" for axis, i in zip(axes, point, strict=True)]


def point_params(axes: tuple[Axis, ...], point: tuple[int, ...]) -> dict[str, Any]:
    """The varied parameters of one point as table cells, keyed by the dotted path."""
    return {axis.key: axis.values[i] for axis, i in zip(axes, point, strict=True)}


def validate_grid(scenario: Path, overrides: list[str], axes: tuple[Axis, ...]) -> None:
    """Load the scenario at every grid point; the first problem is an InputError naming it.

    Points are checked whole, not axis by axis, because some limits span fields
    (e.g. top-up threshold + amount <= the purse cap).
    """
    keys = [axis.key for axis in axes]
    if len(set(keys)) != len(keys):
        raise InputError(scenario, "--vary: each key may be varied only once")
    points = grid_points(axes)
    if len(points) > MAX_POINTS:
        raise InputError(scenario, f"--vary: {len(points):,} grid points (limit {MAX_POINTS:,})")
    for point in points:
        extra = point_overrides(axes, point)
        try:
            load_scenario(scenario, [*overrides, *extra])
        except InputError as exc:
            raise InputError(scenario, f"--vary {' '.join(extra)}: {exc.message}") from None
