"""``busbarfem compare``: two mesh levels of the L busbar side by side.

The printed relative changes of R and T max equal those computed here from the two
summary.json files; with -o the table and the plot are written.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from busbarfem.cli import main

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "examples" / "busbar_l_bolted.yaml"


@pytest.fixture(scope="module")
def levels(tmp_path_factory) -> list[Path]:
    base = tmp_path_factory.mktemp("levels")
    outs = []
    for h in ("0.008", "0.003"):
        out = base / f"h{h}"
        assert main(["run", str(CASE), "-o", str(out), "-q", "--no-report", "--no-cache", "--set",
                     f"mesh.size={h}"]) == 0
        outs.append(out)
    return outs


def _row(text: str, label: str) -> str:
    return next(ln for ln in text.splitlines() if ln.startswith(label))


def test_compare_prints_relative_change_of_R_and_Tmax(levels, capsys, tmp_path):
    a, b = (json.loads((p / "summary.json").read_text()) for p in levels)
    assert a["mesh_cells"] != b["mesh_cells"]
    capsys.readouterr()
    assert main(["compare", str(levels[0]), str(levels[1]), "-o", str(tmp_path / "cmp")]) == 0
    text = capsys.readouterr().out
    rel_R = (b["terminal"]["resistance_ohm"] - a["terminal"]["resistance_ohm"]) / a["terminal"]["resistance_ohm"]
    rel_T = (b["T_max"]["value"] - a["T_max"]["value"]) / a["T_max"]["value"]
    dT = b["T_max"]["value"] - a["T_max"]["value"]
    r_row = _row(text, "R: terminal V/I")
    t_row = _row(text, "T max over the run")
    assert r_row.rstrip().endswith(f"{100 * rel_R:+.4g} %")
    assert t_row.rstrip().endswith(f"{100 * rel_T:+.4g} % ({dT:+.4g} K)")
    # the values themselves, side by side
    assert f"{a['terminal']['resistance_ohm']:.6g}" in r_row and f"{b['terminal']['resistance_ohm']:.6g}" in r_row
    assert rel_R != 0.0 and dT != 0.0  # the two levels really differ
    # compare.csv keeps full precision
    with open(tmp_path / "cmp" / "compare.csv", newline="") as f:
        row = next(r for r in csv.reader(f) if r[0].startswith("R: terminal V/I"))
    assert float(row[1]) == a["terminal"]["resistance_ohm"] and float(row[2]) == b["terminal"]["resistance_ohm"]
    assert float(row[3]) == pytest.approx(rel_R, rel=1e-12)
    assert (tmp_path / "cmp" / "compare_headline.png").stat().st_size > 5000  # steady runs: bar chart


def test_compare_needs_two_output_folders(levels, tmp_path, capsys):
    assert main(["compare", str(levels[0])]) == 2
    assert main(["compare", str(levels[0]), str(tmp_path)]) == 2
    assert "summary.json" in capsys.readouterr().err
