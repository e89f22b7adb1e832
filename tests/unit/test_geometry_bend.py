"""Bent-sheet busbars and general bolts (issue 16): volumes, names, conformity, located errors."""

from __future__ import annotations

import math

import gmsh
import pytest
from pydantic import ValidationError

from busbarfem.case.geometry import Busbar, Geometry, MeshOptions
from busbarfem.errors import CaseError
from busbarfem.geometry import generate_model
from busbarfem.geometry.bend import plan
from busbarfem.geometry.inspect import mesh_measure, physical_names, shared_facets

W, T = 0.01, 0.002


def _g(**kw) -> Geometry:
    kw.setdefault("terminals", {"positive": "busbar_1.start", "negative": "busbar_1.end"})
    return Geometry.model_validate(kw)


def test_3d_sheet_with_sections_holes_slot_and_bolts(gmsh_session):
    """Two bends in two planes, a narrower segment after a collinear point, a hole, a slot,
    a bolt along x protruding on the -x side only, a bolt along z with washer and nut below."""
    bar = {"path": [[0, 0, 0], [0.03, 0, 0], [0.06, 0, 0], [0.06, 0, 0.04], [0.06, 0.05, 0.04]],
           "width": W, "thickness": T, "bend_radii": [0, 0.003, 0.004],
           "segments": [{"width": 0.012}, {}, {}, {"thickness": 0.003}][:0] or None,
           "holes": [{"at": [0.015, 0.0], "radius": 0.002},
                     {"at": [0.04, 0.001], "radius": 0.001, "length": 0.004, "angle": 90}]}
    bar["segments"] = [{"width": 0.014}, {}, {}, {}]
    g = _g(busbars=[bar], bolts=[
        {"center": [0.045, 0, 0], "radius": 0.0015, "height": -0.004,
         "washer": {"outer_radius": 0.003, "thickness": 0.001, "end": "bottom"},
         "nut": {"outer_radius": 0.003, "thickness": 0.002, "end": "bottom"}},
        {"center": [0.06, 0.0, 0.02], "axis": [1, 0, 0], "radius": 0.0015, "height": 0.0, "below": 0.003}])
    info = generate_model(g, MeshOptions(size=0.004, order=1))
    assert set(physical_names(3)) == {"busbar_1", "bolt_1", "bolt_2", "washer_1", "nut_1"}
    p = plan(Busbar.model_validate(bar))
    straights = [x for x in p.pieces if x.kind == "straight"]
    bends = [x for x in p.pieces if x.kind == "bend"]
    v = sum(x.width * x.thickness * x.length for x in straights)
    v += sum(x.width * x.thickness * x.rc * x.theta for x in bends)
    v -= (math.pi * 0.002**2 + (math.pi * 0.001**2 + 2 * 0.001 * 0.004)) * T
    v -= math.pi * 0.0015**2 * T * 2  # both bolts cross one sheet thickness
    assert info.volumes["busbar_1"] == pytest.approx(v, rel=1e-9)  # bolt extents: OCC line cuts
    for name, vol in info.volumes.items():
        assert mesh_measure(name) == pytest.approx(vol, rel=0.01), name
    assert info.volumes["bolt_1"] == pytest.approx(math.pi * 0.0015**2 * (T + 0.004), rel=1e-9)
    assert info.volumes["bolt_2"] == pytest.approx(math.pi * 0.0015**2 * (T + 0.003), rel=1e-9)
    assert info.volumes["nut_1"] == pytest.approx(math.pi * (0.003**2 - 0.0015**2) * 0.002, rel=1e-12)
    for a, b in (("busbar_1", "bolt_1"), ("busbar_1", "bolt_2"), ("bolt_1", "washer_1"),
                 ("washer_1", "nut_1"), ("busbar_1", "washer_1")):
        assert shared_facets(a, b) > 5, (a, b)
    assert mesh_measure("terminal_pos") == pytest.approx(0.014 * T, rel=1e-9)
    assert mesh_measure("terminal_neg") == pytest.approx(W * T, rel=1e-9)
    assert info.parameters["quality"]["min_dihedral_deg"] > 3
    bends_out = info.parameters["builders"]["bent_sheets"]["busbar_1"]["bends"]
    assert [b["inner_radius_m"] for b in bends_out] == [0.003, 0.004]


@pytest.mark.parametrize("name", ["top", "bottom"])
def test_bolt_end_faces_and_sheet_faces(gmsh_session, name):
    g = _g(busbars=[{"path": [[0, 0, 0], [0.04, 0, 0], [0.04, 0, 0.03]], "width": W, "thickness": T,
                     "bend_radii": [0.003]}],
           bolts=[{"center": [0.01, 0, 0], "radius": 0.002, "height": 0.003, "below": 0.002}],
           terminals={"positive": f"bolt_1.{name}", "negative": "busbar_1.end"})
    generate_model(g, MeshOptions(size=0.004, order=1))
    assert mesh_measure("terminal_pos") == pytest.approx(math.pi * 0.002**2, rel=0.02)


def test_plane_path_in_the_bend_builder_matches_the_plane_builder(gmsh_session):
    """The same 2D L bar through both builders (per-bend radii force the bent-sheet one)."""
    plane = Busbar(path=[(0, 0), (0.05, 0), (0.05, 0.05)], width=W, thickness=T, fillet_radius=0.004)
    bent = Busbar(path=[(0, 0), (0.05, 0), (0.05, 0.05)], width=W, thickness=T, bend_radii=[0.004])
    assert bent.needs_bend_builder() and not plane.needs_bend_builder()
    assert bent.centre_length() == pytest.approx(plane.centre_length(), rel=1e-12)
    info = generate_model(_g(busbars=[bent.model_dump()]), MeshOptions(size=0.004, order=1))
    assert info.volumes["busbar_1"] == pytest.approx(plane.centre_length() * W * T, rel=1e-12)
    assert mesh_measure("busbar_1") == pytest.approx(info.volumes["busbar_1"], rel=0.005)


@pytest.mark.parametrize("bar, match", [
    ({"path": [[0, 0], [1, 0, 0]]}, "all have 2 coordinates"),
    ({"path": [[0, 0, 0], [0.02, 0, 0], [0.02, 0, 0.02]], "bend_radii": [0.0]}, "inner radius > 0"),
    ({"path": [[0, 0, 0], [0.02, 0, 0], [0.02, 0, 0.02]], "bend_radii": [0.03]}, "segment 1 .* bends need"),
    ({"path": [[0, 0, 0], [0.02, 0, 0], [0.02, 0, 0.02]], "bend_radii": [0.003],
      "segments": [{"width": 0.02}, {}]}, "different sections"),
    ({"path": [[0, 0, 0], [0.02, 0, 0], [0.02, 0, 0.02]], "bend_radii": [0.003, 0.1]}, "one radius each"),
    ({"path": [[0, 0, 0], [0.02, 0, 0]], "normal": [1, 0, 0]}, "parallel to the first path segment"),
    ({"path": [[0, 0, 0], [0.02, 0, 0]], "holes": [{"radius": 0.001}]}, "exactly one of center"),
])
def test_bad_bent_sheet_is_a_validation_error(bar, match):
    bar = {"width": W, "thickness": T, **bar}
    with pytest.raises(ValidationError, match=match):
        Busbar.model_validate(bar)


@pytest.mark.parametrize("hole, match", [
    ({"at": [0.019, 0], "radius": 0.001}, "in a bend|outside its straight run"),
    ({"at": [0.005, 0.004], "radius": 0.002}, "beyond the half-width"),
    ({"at": [1.0, 0], "radius": 0.001}, "beyond the developed length"),
])
def test_misplaced_hole_is_a_located_case_error(gmsh_session, hole, match):
    g = _g(busbars=[{"path": [[0, 0, 0], [0.02, 0, 0], [0.02, 0, 0.02]], "width": W, "thickness": T,
                     "bend_radii": [0.003], "holes": [hole]}])
    with pytest.raises(CaseError, match=match) as exc:
        generate_model(g, MeshOptions(size=0.004))
    assert exc.value.key == "geometry.busbars.0.holes.0"


def test_bolt_missing_its_plate_and_fittings_too_thick():
    with pytest.raises(ValidationError, match="protrudes only"):
        Geometry.model_validate({"busbars": [{"path": [[0, 0], [0.05, 0]], "width": W, "thickness": T}],
                                 "bolts": [{"center": [0.01, 0], "radius": 0.002, "height": 0.001,
                                            "nut": {"outer_radius": 0.004, "thickness": 0.002}}]})
    with pytest.raises(ValidationError, match="passes through busbar 2"):
        Geometry.model_validate({"busbars": [{"path": [[0, 0], [0.05, 0]], "width": W, "thickness": T}],
                                 "bolts": [{"center": [0.01, 0], "radius": 0.002, "height": 0.001,
                                            "through": [1, 2]}]})


def test_bolt_axis_missing_the_plate(gmsh_session):
    g = _g(busbars=[{"path": [[0, 0, 0], [0.05, 0, 0]], "width": W, "thickness": T}],
           bolts=[{"center": [0.01, 0.02, 0], "radius": 0.002, "height": 0.003}])
    with pytest.raises(CaseError, match="misses busbar_1") as exc:
        generate_model(g, MeshOptions(size=0.004))
    assert exc.value.key == "geometry.bolts.0"


def test_bolt_through_two_stacked_plates(gmsh_session):
    g = _g(busbars=[{"path": [[0, 0], [0.05, 0]], "width": W, "thickness": T},
                    {"path": [[0.0, 0], [0.05, 0]], "width": W, "thickness": 0.001, "z0": T}],
           bolts=[{"center": [0.025, 0], "radius": 0.002, "height": 0.002, "through": [1, 2]}])
    info = generate_model(g, MeshOptions(size=0.004, order=1))
    a = math.pi * 0.002**2
    assert info.volumes["bolt_1"] == pytest.approx(a * (T + 0.001 + 0.002), rel=1e-9)
    assert info.volumes["busbar_2"] == pytest.approx(0.05 * W * 0.001 - a * 0.001, rel=1e-9)
    assert shared_facets("busbar_2", "bolt_1") > 5 and shared_facets("busbar_1", "bolt_1") > 5
