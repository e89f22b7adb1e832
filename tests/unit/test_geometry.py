"""Busbar/bolt builders: names, analytic volumes, conformity, terminals, cache, errors."""

from __future__ import annotations

import math

import gmsh
import pytest
from pydantic import ValidationError

from busbarfem.case.geometry import Bolt, Busbar, Geometry, MeshOptions, Terminals
from busbarfem.errors import CaseError
from busbarfem.geometry import generate_model
from busbarfem.geometry.inspect import mesh_measure, physical_names, shared_facets


def straight_bar() -> Geometry:
    return Geometry(
        busbars=[Busbar(path=[(0, 0), (0.1, 0)], width=0.01, thickness=0.002)],
        terminals=Terminals(positive="busbar_1.start", negative="busbar_1.end"),
    )


def l_bar(fillet: float) -> Geometry:
    return Geometry(
        busbars=[Busbar(path=[(0, 0), (0.05, 0), (0.05, 0.05)], width=0.01,
                        thickness=0.002, fillet_radius=fillet)],
        bolts=[Bolt(center=(0.05, 0.04), radius=0.003, height=0.004)],
        terminals=Terminals(positive="busbar_1.start", negative="bolt_1.top"),
    )


def test_straight_bar(gmsh_session):
    info = generate_model(straight_bar(), MeshOptions())
    assert set(physical_names()) == {"busbar_1", "terminal_pos", "terminal_neg"}
    assert info.volumes["busbar_1"] == pytest.approx(0.1 * 0.01 * 0.002, rel=1e-12)
    assert mesh_measure("busbar_1") == pytest.approx(2e-6, rel=1e-9)
    assert mesh_measure("terminal_pos") == pytest.approx(0.01 * 0.002, rel=1e-9)
    xmin, ymin, zmin, xmax, ymax, zmax = gmsh.model.getBoundingBox(-1, -1)
    assert (xmin, ymin, zmin, xmax, ymax, zmax) == pytest.approx(
        (0, -0.005, 0, 0.1, 0.005, 0.002), abs=1e-6)  # OCC bbox tolerance
    q = info.parameters["quality"]
    assert q["elements"] < 20_000
    assert q["min_dihedral_deg"] > 5
    assert info.regions["terminal_neg"].polarity == "neg"


@pytest.mark.parametrize("fillet", [0.0, 0.004])
def test_l_bar_with_bolt(gmsh_session, fillet):
    info = generate_model(l_bar(fillet), MeshOptions(order=1))
    assert set(physical_names(3)) == {"busbar_1", "bolt_1"}
    for name in ("busbar_1", "bolt_1"):
        assert mesh_measure(name) == pytest.approx(info.volumes[name], rel=0.01)
    # analytic: area = centre-line length x width
    h = 0.005
    if fillet == 0:
        area = 0.1 * 0.01
    else:
        rc = fillet + h
        area = (0.1 - 2 * rc + rc * math.pi / 2) * 0.01
    v_busbar = (area - math.pi * 0.003**2) * 0.002
    assert info.volumes["busbar_1"] == pytest.approx(v_busbar, rel=1e-12)
    assert shared_facets("busbar_1", "bolt_1") > 20
    assert mesh_measure("terminal_neg") == pytest.approx(math.pi * 0.003**2, rel=0.01)


def test_second_order_mesh(gmsh_session):
    info = generate_model(l_bar(0.004), MeshOptions(order=2, size=0.006))
    types, _, _ = gmsh.model.mesh.getElements(3)
    assert list(types) == [11]  # 10-node tetrahedra
    assert mesh_measure("bolt_1") == pytest.approx(info.volumes["bolt_1"], rel=0.002)


def test_cache_roundtrip(gmsh_session, tmp_path):
    info = generate_model(l_bar(0.004), MeshOptions(), cache_dir=tmp_path)
    assert info.parameters["cache"]["hit"] is False
    n = info.parameters["quality"]["elements"]
    gmsh.model.remove()
    gmsh.model.add("again")
    again = generate_model(l_bar(0.004), MeshOptions(), cache_dir=tmp_path)
    assert again.parameters["cache"]["hit"] is True
    assert again.regions == info.regions and again.volumes == info.volumes
    assert set(physical_names()) == set(info.regions)
    assert again.parameters["quality"]["elements"] == n
    assert shared_facets("busbar_1", "bolt_1") > 20


def test_dolfinx_conversion(gmsh_session):
    import dolfinx_solver  # noqa: F401  (must precede dolfinx/mpi4py)
    from dolfinx.io.gmsh import model_to_mesh
    from mpi4py import MPI

    generate_model(l_bar(0.0), MeshOptions(size=0.006))
    data = model_to_mesh(gmsh.model, MPI.COMM_SELF, 0)
    assert {"busbar_1", "bolt_1", "terminal_pos", "terminal_neg"} <= set(data.physical_groups)
    assert data.mesh.topology.index_map(3).size_local > 0


def test_fillet_too_large():
    with pytest.raises(ValidationError, match="largest feasible inner radius"):
        Busbar(path=[(0, 0), (0.02, 0), (0.02, 0.02)], width=0.01, thickness=0.002,
               fillet_radius=0.02)


@pytest.mark.parametrize("bad", [{"thickness": 0.0}, {"width": -1.0}, {"path": [(0, 0)]},
                                 {"colour": "red"}])
def test_busbar_validation(bad):
    kw = {"path": [(0, 0), (0.1, 0)], "width": 0.01, "thickness": 0.002} | bad
    with pytest.raises(ValidationError):
        Busbar(**kw)


def test_bad_terminal_reference(gmsh_session):
    g = straight_bar()
    g.terminals = Terminals(positive="busbar_1.begin", negative="busbar_1.end")
    with pytest.raises(CaseError) as err:
        generate_model(g, MeshOptions())
    assert "busbar_1.start" in str(err.value) and "did you mean" in str(err.value)


def test_unknown_material_of_a_washer_is_located(tmp_path):
    """Material names are checked once, by the case checks (not again by the geometry
    builder): a misspelt washer material names its key and line."""
    from busbarfem.case.loader import load_case
    from helpers import EXAMPLES

    text = (EXAMPLES / "bolted_lug_contact.yaml").read_text()
    assert "washer: {outer_radius: 0.008, thickness: 0.0015, end: top}" in text
    text = text.replace("washer: {outer_radius: 0.008, thickness: 0.0015, end: top}",
                        "washer: {outer_radius: 0.008, thickness: 0.0015, end: top, material: stel}")
    path = tmp_path / "case.yaml"
    path.write_text(text)
    with pytest.raises(CaseError) as err:
        load_case(path)
    msg = str(err.value)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "material: stel" in ln)
    assert "unknown material 'stel'" in msg and "washer.material" in msg and f"case.yaml:{line}" in msg, msg


@pytest.mark.slow
def test_render_preview(gmsh_session, tmp_path):
    from busbarfem.geometry import render_preview

    generate_model(l_bar(0.004), MeshOptions(size=0.006))
    png = render_preview(tmp_path / "preview.png", window_size=(400, 300))
    assert png.stat().st_size > 5000
