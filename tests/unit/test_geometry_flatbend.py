"""Bend lines on flat patterns (issue 16): shapes against closed-form positions, volumes, errors."""

from __future__ import annotations

import math

import gmsh
import pytest
from pydantic import ValidationError

from busbarfem.case.geometry import Geometry
from busbarfem.errors import CaseError
from busbarfem.geometry.model import build_assembly

T = 0.001
STRIP = [[0, 0], [0.1, 0], [0.1, 0.01], [0, 0.01]]


def _geometry(bends, outline=STRIP, **kw) -> Geometry:
    return Geometry.model_validate({"plates": [{"outline": outline, "thickness": T, "bends": bends, **kw}],
                                    "terminals": {"positive": "busbar_1.top", "negative": "busbar_1.bottom"}})


def _build(g: Geometry):
    asm = build_assembly(g)
    gmsh.model.occ.synchronize()
    vols = gmsh.model.getEntities(3)
    bbox = gmsh.model.getBoundingBox(-1, -1)
    return asm, sum(gmsh.model.occ.getMass(*v) for v in vols), bbox, len(vols)


def test_z_pattern_height_and_volume(gmsh_session):
    """Up at x = 30 mm (r 2 mm), back down at x = 70 mm (r 4 mm): a Z with a vertical riser."""
    bends = [{"line": [[0.03, 0.01], [0.03, 0.0]], "angle": 90, "radius": 0.002},
             {"line": [[0.07, 0.01], [0.07, 0.0]], "angle": -90, "radius": 0.004}]
    asm, vol, bbox, n = _build(_geometry(bends, faces={"end": [0.1, 0.005]}))
    ba = [math.pi / 2 * (r + T / 2) for r in (0.002, 0.004)]
    riser = 0.04 - ba[0] / 2 - ba[1] / 2
    rc1, rc2 = 0.002 + T / 2, 0.004 + T / 2
    assert n == 1
    assert vol == pytest.approx(0.1 * 0.01 * T, rel=1e-9)
    assert asm.parts["busbar_1"].volume == pytest.approx(0.1 * 0.01 * T, rel=1e-12)
    assert bbox[5] == pytest.approx(T + rc1 + riser + rc2, abs=2e-7)  # top face of the top leg
    # the riser's mid-plane is rc1 beyond the zone start (30 mm - BA1/2); then bend 2 and the top leg
    x_riser = 0.03 - ba[0] / 2 + rc1
    assert bbox[3] == pytest.approx(x_riser + rc2 + (0.03 - ba[1] / 2), abs=2e-7)
    sel = asm.faces["busbar_1.end"]
    assert sel.normal == pytest.approx((1, 0, 0), abs=1e-12)
    assert sel.point[2] == pytest.approx(T / 2 + rc1 + riser + rc2, abs=1e-9)


def test_u_channel_two_independent_flanges_and_k_factor(gmsh_session):
    """Both ends bent up 90 deg (lines pointing so the flanges are on their left), K = 0.3."""
    k, r = 0.3, 0.002
    bends = [{"line": [[0.02, 0.0], [0.02, 0.01]], "angle": 90, "radius": r, "k_factor": k},
             {"line": [[0.08, 0.01], [0.08, 0.0]], "angle": 90, "radius": r, "k_factor": k}]
    asm, vol, bbox, _ = _build(_geometry(bends))
    ba = math.pi / 2 * (r + k * T)
    exact = (0.1 * 0.01 - 2 * ba * 0.01) * T + 2 * math.pi / 2 * (r + T / 2) * T * 0.01
    assert asm.parts["busbar_1"].volume == pytest.approx(exact, rel=1e-12)
    assert vol == pytest.approx(exact, rel=1e-9)
    flange = 0.02 - ba / 2  # flat length of each flange
    assert bbox[5] == pytest.approx(r + T + flange, abs=2e-7)
    assert bbox[0] == pytest.approx(0.02 + ba / 2 - r - T, abs=2e-7)
    assert bbox[3] == pytest.approx(0.08 - ba / 2 + r + T, abs=2e-7)


def _dxf(tmp_path, hole_at) -> str:
    import ezdxf

    doc = ezdxf.new()
    doc.header["$INSUNITS"] = 4
    doc.modelspace().add_lwpolyline([(0, 0), (100, 0), (100, 10), (0, 10)], close=True)
    doc.modelspace().add_circle(hole_at, 2)
    doc.saveas(tmp_path / "h.dxf")
    return str(tmp_path / "h.dxf")


def test_holes_on_the_flat_parts_move_with_them(gmsh_session, tmp_path):
    g = Geometry.model_validate({"plates": [{"file": _dxf(tmp_path, (20, 5)), "thickness": T,
                                             "bends": [{"line": [[0.05, 0.0], [0.05, 0.01]], "angle": 90,
                                                        "radius": 0.003}]}],
                                 "terminals": {"positive": "busbar_1.top", "negative": "busbar_1.bottom"}})
    asm, vol, _, _ = _build(g)
    exact = (0.1 * 0.01 - math.pi * 0.002**2) * T
    assert asm.parts["busbar_1"].volume == pytest.approx(exact, rel=1e-12)
    assert vol == pytest.approx(exact, rel=1e-9)
    assert len(asm.faces["busbar_1.top"]) == 2
    # the hole is on the bent (left) part: it moved with it. The flange stands at
    # x = 52.749 - 4 .. 52.749 - 3 mm (zone start 50 + BA/2, inner radius 3 mm + T), and the hole
    # (18..22 mm, 25.25..29.25 mm from the zone start) rises to z = 29.25..33.25 mm
    circles = [gmsh.model.getBoundingBox(1, c) for _, c in gmsh.model.getEntities(1)
               if gmsh.model.getType(1, c) == "Circle" and gmsh.model.getBoundingBox(1, c)[5] > 0.02]
    assert len(circles) == 2
    for bb in circles:
        assert bb[2] == pytest.approx(0.02925, abs=1e-5) and bb[5] == pytest.approx(0.03325, abs=1e-5)
        assert 0.0487 < bb[0] < 0.0498 and bb[1] == pytest.approx(0.003, abs=1e-6)


@pytest.mark.parametrize("bends, extra, key, match", [
    ([{"line": [[0.2, 0.0], [0.2, 0.01]], "angle": 90, "radius": 0.003}], {},
     "geometry.plates.0.bends.0.line", "does not cross"),
    ([{"line": [[0.0, 0.0], [0.1, 0.01]], "angle": 90, "radius": 0.003}], {},
     "geometry.plates.0.bends.0.line", "not a full rectangle"),
    ([{"line": [[0.05, 0.0], [0.05, 0.01]], "angle": 90, "radius": 0.003},
      {"line": [[0.053, 0.0], [0.053, 0.01]], "angle": 45, "radius": 0.003}], {},
     "geometry.plates.0.bends.1.line", "overlap"),
    ([{"line": [[0.03, 0.01], [0.03, 0.0]], "angle": 90, "radius": 0.002},
      {"line": [[0.07, 0.0], [0.07, 0.01]], "angle": 90, "radius": 0.002}], {},
     "geometry.plates.0.bends.1.line", "each lie on the other"),
    ([{"line": [[0.05, 0.0], [0.05, 0.01]], "angle": 90, "radius": 0.003}], {"faces": {"end": [0.1, 0.02]}},
     "geometry.plates.0.faces.end", "no straight edge"),
    ([{"line": [[0.05, 0.0], [0.05, 0.01]], "angle": 90, "radius": 0.003}], {"faces": {"mid": [0.05, 0.0]}},
     "geometry.plates.0.faces.mid", "bend zone"),
])
def test_bad_bends_are_located_errors(gmsh_session, bends, extra, key, match):
    with pytest.raises(CaseError, match=match) as exc:
        _build(_geometry(bends, **extra))
    assert exc.value.key == key


def test_hole_in_a_bend_zone_is_an_error(gmsh_session, tmp_path):
    g = Geometry.model_validate({"plates": [{"file": _dxf(tmp_path, (50, 5)), "thickness": T,
                                             "bends": [{"line": [[0.05, 0.0], [0.05, 0.01]], "angle": 90,
                                                        "radius": 0.003}]}],
                                 "terminals": {"positive": "busbar_1.top", "negative": "busbar_1.bottom"}})
    with pytest.raises(CaseError, match="no hole in the zone"):
        _build(g)


@pytest.mark.parametrize("plate, match", [
    ({"bends": [{"line": [[0, 0], [0, 0.01]], "angle": 90, "radius": -0.001}]}, "greater than 0"),
    ({"bends": [{"line": [[0, 0], [0, 0.01]], "angle": 0, "radius": 0.001}]}, "0 < |angle|"),
    ({"bends": [{"line": [[0, 0], [0, 0]], "angle": 90, "radius": 0.001}]}, "two different"),
    ({"bends": [{"line": [[0, 0], [0, 1]], "angle": 90, "radius": 0.001, "k_factor": 2}]}, "less than or equal"),
    ({"faces": {"top": [0, 0]}}, "named already"),
    ({"file": "a.dxf"}, "one of them"),
])
def test_bad_bend_schema(plate, match):
    with pytest.raises(ValidationError, match=match):
        Geometry.model_validate({"plates": [{"outline": STRIP, "thickness": T, **plate}]})


def test_bad_polygon_is_a_located_error(gmsh_session):
    with pytest.raises(CaseError, match="cross") as exc:
        _build(_geometry([], outline=[[0, 0], [0.1, 0.01], [0.1, 0], [0, 0.01]]))
    assert exc.value.key == "geometry.plates.0.outline"
