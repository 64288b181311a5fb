"""The settlement core stays pure: no simulation library, no clock, no global random state."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = [Path("cardsim/records"), Path("cardsim/settlement")]
ROOT = Path(__file__).resolve().parents[1]


def test_core_does_not_import_simpy() -> None:
    code = (
        "import sys, cardsim.records.log, cardsim.settlement.kernel, "
        "cardsim.settlement.reference; print('simpy' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "False"


def test_core_reads_no_clock_and_no_global_random() -> None:
    banned = {"time", "datetime", "random"}
    for folder in CORE:
        for path in sorted((ROOT / folder).glob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module.split(".")[0]]
                assert not banned & set(names), f"{path.name} imports {names}"
                if isinstance(node, ast.Attribute) and node.attr == "seed":
                    raise AssertionError(f"{path.name} seeds a global generator")
