"""The reference documents generated from code: the scenario reference from the pydantic models
of cardsim/scenario.py, and the output schema from cardsim/results/outputs.py.

    python -m cardsim.schema_docs scenario > docs/scenario-reference.md
    python -m cardsim.schema_docs outputs > docs/output-schema.md

tests/test_docs.py checks that the committed documents equal this output, so they cannot drift
from the code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from cardsim.results.outputs import COMMANDS
from cardsim.results.schema import KPIS, OUTPUTS_VERSION, OutputFile
from cardsim.scenario import Scenario

NOT_A_QUANTITY = "-"
"""The unit shown for booleans, text and choices."""


@dataclass(frozen=True)
class FieldDoc:
    """One scenario field as the reference shows it."""

    path: str
    type: str
    unit: str
    default: str
    bounds: str
    description: str
    numeric: bool
    """A number or a list of numbers: these must name their unit."""


@dataclass(frozen=True)
class Section:
    """One TOML table of a scenario: a sub-model and its plain fields."""

    path: str
    description: str
    fields: tuple[FieldDoc, ...]


def scenario_sections(
    model: type[BaseModel] = Scenario,
    path: str = "",
    instance: BaseModel | None = None,
    description: str = "",
) -> Iterator[Section]:
    """Every section of the scenario, depth first in field order, defaults from `instance`."""
    properties = model.model_json_schema()["properties"]
    leaves, subsections = [], []
    for name, info in model.model_fields.items():
        dotted = f"{path}.{name}" if path else name
        default = getattr(instance, name) if instance is not None else info.default
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            about = " ".join(d for d in (info.description, annotation.__doc__) if d)
            subsections.append((annotation, dotted, default, about))
        else:
            leaves.append(field_doc(dotted, properties[name], default))
    yield Section(path, _one_line(description or model.__doc__ or ""), tuple(leaves))
    for sub, dotted, default, about in subsections:
        yield from scenario_sections(sub, dotted, default, about)


def field_doc(path: str, prop: dict[str, Any], default: Any) -> FieldDoc:
    """One leaf field from its JSON schema property and its default value."""
    item = prop.get("items", {})
    element = item.get("prefixItems", [item])[0] if item else prop
    numeric = element.get("type") in ("integer", "number")
    return FieldDoc(
        path=path,
        type=_type(prop),
        unit=element.get("unit", "" if numeric else NOT_A_QUANTITY),
        default="required" if default is PydanticUndefined else f"`{_toml(default)}`",
        bounds=("each " if item else "") + _bounds(element),
        description=_one_line(prop.get("description", "")),
        numeric=numeric,
    )


def _type(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    kind = prop.get("type", "")
    if kind == "array":
        item = prop["items"]
        if "prefixItems" in item:
            return "list of [" + ", ".join(_type(p) for p in item["prefixItems"]) + "]"
        return f"list of {_type(item)}"
    return {"string": "text"}.get(kind, kind)


def _bounds(prop: dict[str, Any]) -> str:
    if "minLength" in prop or "maxLength" in prop:
        return f"{prop.get('minLength', 0)} to {prop.get('maxLength', 'any')} characters"
    low = (
        f"{_number(prop['minimum'])} ≤ "
        if "minimum" in prop
        else f"{_number(prop['exclusiveMinimum'])} < "
        if "exclusiveMinimum" in prop
        else ""
    )
    high = (
        f" ≤ {_number(prop['maximum'])}"
        if "maximum" in prop
        else f" < {_number(prop['exclusiveMaximum'])}"
        if "exclusiveMaximum" in prop
        else ""
    )
    return f"{low}x{high}" if low or high else ""


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return repr(value)


def _toml(value: Any) -> str:
    """A default as it would be written in a scenario file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _code(text: str) -> str:
    """Inline code in a table cell; GitHub reads an escaped pipe as a pipe even there."""
    return f"`{text}`".replace("|", "\\|")


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


SCENARIO_INTRO = """\
# Scenario reference

Generated from the pydantic models in `cardsim/scenario.py` by
`python -m cardsim.schema_docs scenario > docs/scenario-reference.md`: edit the models (a
field's docstring is its description, its unit comes from `unit(...)` or its type), then
regenerate. `tests/test_docs.py` fails while this file and the models disagree.

A scenario is a TOML file. Each section below is a TOML table (`[population]`,
`[pos.shops]`), each field a key in it; every field except `name` has a default. Unknown keys
are errors, so a typo never falls back to a default. `--set KEY.PATH=VALUE` overrides any field
by its dotted path (`cardsim run scenarios/small-town.toml --out out/x --set
clearing.workers=4`), and `cardsim validate SCENARIO` checks a file without running it.

Units: **fen** is 1/100 yuan, always a whole number (`2.0` is refused); **s** is seconds, and a
time of day is seconds after the simulated day's midnight (86400 is the next midnight);
**bp** is basis points, 1/10,000 (10000 = 100 %); **share** and **probability** are fractions
from 0 to 1; **sd of ln** is the standard deviation of the natural log of a lognormal amount
(0: every amount equals the median); **factor** multiplies; **-** marks a value that is not a
quantity (a switch, a choice, text).
"""


def scenario_markdown() -> str:
    """docs/scenario-reference.md."""
    lines = [SCENARIO_INTRO]
    for section in scenario_sections():
        lines.append(f"## `{section.path}`" if section.path else "## Top level")
        lines += ["", section.description, ""] if section.description else [""]
        if section.fields:
            lines += [
                "| field | type | unit | default | bounds | description |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                f"| `{f.path}` | {f.type} | {f.unit} | {f.default} | {f.bounds} | {f.description} |"
                for f in section.fields
            ]
            lines.append("")
    return "\n".join(lines)


OUTPUTS_INTRO = f"""\
# Output schema

Version **`{OUTPUTS_VERSION}`**. Generated from `cardsim/results/outputs.py` by
`python -m cardsim.schema_docs outputs > docs/output-schema.md`. `tests/test_docs.py` runs
each command and fails when a file, column or JSON key is written but not listed here, listed
but not written, or written with another type: adding an output means adding a line to
`cardsim/results/outputs.py` and regenerating this file.

The version goes up when a file, column or key is removed or renamed or changes type or
meaning. Adding one keeps the version: readers should ignore what they do not know. Each JSON
document also names its own type and version in its `schema` key.

Conventions. Money is int64 **fen** (1/100 yuan) everywhere. `_ms` is milliseconds since the
Unix epoch (UTC), `_s` seconds; a day's clock starts at 2026-07-01 00:00 UTC+8. Every command
builds its folder under a temporary name and renames it into place, `summary.json` last: a
folder without it is not a finished output. The same command, scenario and seed give the same
bytes in every file. Types are Arrow types for Parquet, pandas dtypes for CSV (as
`pandas.read_csv` reads them; a float column may read as int64 when every value is whole) and
JSON types for JSON, where `a.b` is key `b` inside object `a`, `a[].b` key `b` of each object
in array `a`, and a `map` has keys that depend on the data. In names, `{{kpi}}` stands for each
KPI below and `{{param}}` for each varied scenario field (its dotted path, e.g.
`clearing.workers`). Type `kpi` is the KPI's own (int64 or double in Parquet, int64 or float64
in CSV, as listed in JSON); type `any` is the type of the varied field's values; `a|b` is
either type.
"""

COMMAND_LINES = {
    "run": "cardsim run SCENARIO --out DIR",
    "settle": "cardsim settle LOG --keys KEYS --out DIR",
    "settle --ledger": "cardsim settle LOG --keys KEYS --ledger DIR --cutoff-ms T "
    "[--corrections FILE]",
    "sweep": "cardsim sweep SCENARIO --vary KEY=V1,V2 --out DIR",
    "capacity": "cardsim capacity SCENARIO --knob KEY --values V1,V2 --sla SLA --out DIR",
    "exposure": "cardsim exposure SCENARIO --intervals I1,I2 --replications R --out DIR",
}


def outputs_markdown() -> str:
    """docs/output-schema.md."""
    lines = [OUTPUTS_INTRO, "## KPIs", ""]
    lines.append("The figures of one simulated day: summary.json `kpis` and every sweep row.\n")
    lines += ["| KPI | type | unit | meaning |", "|---|---|---|---|"]
    lines += [f"| `{k.name}` | {_code(k.kind)} | {k.unit} | {_one_line(k.meaning)} |" for k in KPIS]
    shown: dict[int, str] = {}
    for command, files in COMMANDS.items():
        lines += ["", f"## `{COMMAND_LINES[command]}`", ""]
        lines.append("Writes " + ", ".join(f"`{f.path}`" for f in files) + ".")
        for file in files:
            lines += _file_markdown(file, shown.get(id(file)))
            shown.setdefault(id(file), command)
    return "\n".join(lines) + "\n"


def _file_markdown(file: OutputFile, shown_under: str | None) -> list[str]:
    lines = ["", f"### `{file.path}`", ""]
    if shown_under:
        return [*lines, f"As written by `cardsim {shown_under}` (above)."]
    about = file.meaning + (f" Written only when {file.when}." if file.when else "")
    if file.schema:
        about += f" `schema`: `{file.schema}`."
    lines.append(_one_line(about))
    if file.columns:
        head = "key" if file.format == "json" else "column"
        lines += ["", f"| {head} | type | meaning |", "|---|---|---|"]
        for column in file.columns:
            maybe = " May be missing." if file.may_miss(column.name) else ""
            lines.append(
                f"| `{column.name}` | {_code(column.dtype)} | {_one_line(column.meaning)}{maybe} |"
            )
    return lines


DOCUMENTS = {"scenario": scenario_markdown, "outputs": outputs_markdown}


def main(argv: list[str]) -> int:
    """Print one document: `scenario` or `outputs`."""
    if len(argv) != 1 or argv[0] not in DOCUMENTS:
        print("usage: python -m cardsim.schema_docs scenario|outputs", file=sys.stderr)
        return 2
    sys.stdout.write(DOCUMENTS[argv[0]]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
