"""DXF outlines (issue 16): the shipped lug meshes with its exact area x thickness; bad drawings."""

from __future__ import annotations

import sys
from pathlib import Path

import ezdxf
import pytest

from busbarfem.case.geometry import Geometry, MeshOptions
from busbarfem.errors import CaseError
from busbarfem.geometry import generate_model
from busbarfem.geometry.dxf import read_outline
from busbarfem.geometry.inspect import mesh_measure, physical_names

DATA = Path(__file__).resolve().parents[1] / "data"
sys.path.insert(0, str(DATA))
import make_lug_dxf  # noqa: E402

T = 0.002


def _plate(file, **kw) -> Geometry:
    return Geometry.model_validate({"plates": [{"file": str(file), "thickness": T, **kw}],
                                    "terminals": {"positive": "busbar_1.top", "negative": "busbar_1.bottom"}})


def test_shipped_drawing_is_what_the_script_writes(tmp_path):
    make_lug_dxf.write(tmp_path / "lug.dxf")
    a, b = read_outline(DATA / "lug_outline.dxf"), read_outline(tmp_path / "lug.dxf")
    assert a.area == pytest.approx(b.area, rel=1e-12) and len(a.holes) == len(b.holes) == 2


def test_lug_volume_is_area_times_thickness(gmsh_session):
    exact = make_lug_dxf.AREA_MM2 * 1e-6 * T
    info = generate_model(_plate(DATA / "lug_outline.dxf"), MeshOptions(size=0.004, order=1))
    assert set(physical_names(3)) == {"busbar_1"}
    assert info.volumes["busbar_1"] == pytest.approx(exact, rel=1e-9)  # Green's theorem on lines + arcs
    assert mesh_measure("busbar_1") == pytest.approx(exact, rel=1e-3)
    assert mesh_measure("terminal_pos") == pytest.approx(exact / T, rel=1e-3)
    assert info.parameters["builders"]["plates"]["busbar_1"]["holes"] == 2
    assert info.parameters["quality"]["min_dihedral_deg"] > 3


@pytest.mark.parametrize("unit, insunits, scale", [("auto", 1, 25.4), ("m", 4, 1000.0)])
def test_units(tmp_path, unit, insunits, scale):
    doc = ezdxf.new()
    doc.header["$INSUNITS"] = insunits
    doc.modelspace().add_lwpolyline([(0, 0), (2, 0), (2, 1), (0, 1)], close=True)
    doc.saveas(tmp_path / "r.dxf")
    out = read_outline(tmp_path / "r.dxf", unit=unit)
    assert out.area == pytest.approx(2.0 * (scale * 1e-3) ** 2, rel=1e-12)


def _bad(tmp_path, draw) -> Path:
    doc = ezdxf.new()
    doc.header["$INSUNITS"] = 4
    draw(doc.modelspace())
    doc.saveas(tmp_path / "bad.dxf")
    return tmp_path / "bad.dxf"


@pytest.mark.parametrize("draw, match", [
    (lambda m: [m.add_line((0, 0), (10, 0)), m.add_line((10, 0), (10, 5)), m.add_line((10, 5), (0, 5))],
     r"open contour: LINE #\w+ ends at \(0, 5\) mm"),
    (lambda m: m.add_spline([(0, 0), (5, 5), (10, 0)]), "SPLINE"),
    (lambda m: [m.add_lwpolyline([(0, 0), (10, 0), (10, 5), (0, 5)], close=True), m.add_circle((20, 0), 1)],
     "outside the outline"),
    (lambda m: m.add_text("x"), "no LINE/ARC"),
])
def test_bad_drawing_is_a_located_case_error(gmsh_session, tmp_path, draw, match):
    path = _bad(tmp_path, draw)
    with pytest.raises(CaseError, match=match) as exc:
        generate_model(_plate(path), MeshOptions(size=0.004))
    assert exc.value.key == "geometry.plates.0.file"
    assert "bad.dxf" in str(exc.value)


def test_not_a_dxf_and_unreadable(gmsh_session, tmp_path):
    with pytest.raises(ValueError, match="not a .dxf"):
        _plate(tmp_path / "lug.step")
    (tmp_path / "junk.dxf").write_text("not a dxf\n")
    with pytest.raises(CaseError, match="cannot read the DXF"):
        generate_model(_plate(tmp_path / "junk.dxf"), MeshOptions(size=0.004))
