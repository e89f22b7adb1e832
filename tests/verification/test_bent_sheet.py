"""Bent-sheet busbars (issue 16): resistance of the developed length and inner-radius crowding.

A strip of constant section bent like sheet metal carries the current along its
centre-line; in the thin-strip limit (thickness << bend radius) its resistance is that of
a straight strip of the developed length, ``R = L_dev / (sigma W T)`` (0.5 %). Exactly,
a bend of angle theta between radii r_i and r_o = r_i + h is an annular sector with
``R = theta / (sigma b ln(r_o / r_i))`` (b the extent along the axis), which also covers an
edgewise bend (h = W) where the thin-strip formula is off by several per cent. In a
bend the current density is ``J(r) = J_mean h / (r ln(r_o/r_i))``: it crowds at the inner
radius, with ``J_i / J_mean = h / (r_i ln(r_o / r_i))`` falling monotonically as the inner
radius grows.
"""

from __future__ import annotations

import math

import gmsh
import numpy as np
import pytest
from test_holm import SIGMA_CU, conduction_solve

from busbarfem.case.geometry import Busbar, Geometry, MeshOptions, Terminals
from busbarfem.geometry import generate_model
from busbarfem.geometry.bend import plan

W, T = 0.010, 0.001


def _solve(bar: Busbar, opts: MeshOptions) -> dict:
    g = Geometry(busbars=[bar], terminals=Terminals(positive="busbar_1.start", negative="busbar_1.end"))
    gmsh.initialize()
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("bent")
        info = generate_model(g, opts)
        res = conduction_solve({"busbar_1": SIGMA_CU})
        res["info"] = info
    finally:
        gmsh.finalize()
    return res


def test_z_busbar_resistance_is_that_of_its_developed_length():
    """Z busbar between two cell rows 20 mm apart in height: two 90 deg sheet bends, r_i = 3 and 5 mm."""
    bar = Busbar(path=[(0, 0, 0), (0.03, 0, 0), (0.03, 0, 0.02), (0.06, 0, 0.02)], width=W, thickness=T,
                 bend_radii=[0.003, 0.005])
    res = _solve(bar, MeshOptions(size=0.004, elements_through_thickness=1, thin_aspect=3.0,
                                  curvature_elements=24, order=1))
    p = plan(bar)
    assert p.developed_length == pytest.approx(0.03 + 0.02 + 0.03 - 2 * 0.0035 - 2 * 0.0055
                                               + (0.0035 + 0.0055) * math.pi / 2, rel=1e-12)
    R_dev = p.developed_length / (SIGMA_CU * W * T)
    R = 1 / res["G"]
    print(f"Z busbar: R = {R * 1e6:.4f} uOhm, developed {R_dev * 1e6:.4f} uOhm ({R / R_dev - 1:+.3%})")
    assert abs(R / R_dev - 1) < 0.005


def test_bends_in_two_planes_match_the_annular_sector_sum():
    """A sheet bend (about the width) then an edgewise bend (about the normal), in two planes."""
    bar = Busbar(path=[(0, 0, 0), (0.04, 0, 0), (0.04, 0, 0.03), (0.04, 0.04, 0.03)], width=W, thickness=T,
                 bend_radii=[0.003, 0.010])
    p = plan(bar)
    bends = [x for x in p.pieces if x.kind == "bend"]
    # first about the width axis (normal rotates), second about the normal (edgewise)
    assert abs(abs(np.dot(bends[0].axis, bends[0].w)) - 1) < 1e-12
    assert abs(abs(np.dot(bends[1].axis, bends[1].n)) - 1) < 1e-12
    R_exact = sum(x.length for x in p.pieces if x.kind == "straight") / (SIGMA_CU * W * T)
    R_exact += bends[0].theta / (SIGMA_CU * W * math.log((0.003 + T) / 0.003))
    R_exact += bends[1].theta / (SIGMA_CU * T * math.log((0.010 + W) / 0.010))
    R_dev = p.developed_length / (SIGMA_CU * W * T)
    res = _solve(bar, MeshOptions(size=0.004, elements_through_thickness=1, thin_aspect=3.0,
                                  curvature_elements=24, order=1))
    R = 1 / res["G"]
    print(f"two planes: R = {R * 1e6:.4f}, sectors {R_exact * 1e6:.4f}, developed {R_dev * 1e6:.4f} uOhm")
    assert abs(R / R_exact - 1) < 0.005
    assert R_dev / R_exact - 1 > 0.006  # the edgewise bend is not thin: the developed length misses


def _bend_profile(r_i: float) -> dict:
    """Peak |J| and the mean |J| on the inner and outer surface layers at mid-bend, over J_mean.

    90 deg sheet bend of T = 2 mm about the y axis (centre at x = 0.03 - r_c, z = r_c).
    """
    import ufl
    from dolfinx import fem
    from dolfinx.fem.petsc import LinearProblem
    from dolfinx.io.gmsh import model_to_mesh
    from mpi4py import MPI

    th = 0.002
    bar = Busbar(path=[(0, 0, 0), (0.03, 0, 0), (0.03, 0, 0.03)], width=W, thickness=th, bend_radii=[r_i])
    g = Geometry(busbars=[bar], terminals=Terminals(positive="busbar_1.start", negative="busbar_1.end"))
    gmsh.initialize()
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        generate_model(g, MeshOptions(size=0.003, elements_through_thickness=4, thin_aspect=1.5,
                                      curvature_elements=48, order=1))
        data = model_to_mesh(gmsh.model, MPI.COMM_SELF, 0)
    finally:
        gmsh.finalize()
    mesh, groups = data.mesh, data.physical_groups
    V = fem.functionspace(mesh, ("Lagrange", 1))
    bcs = [fem.dirichletbc(np.float64(val), fem.locate_dofs_topological(
        V, 2, data.facet_tags.find(groups[name].tag)), V) for name, val in (("terminal_pos", 1.0),
                                                                            ("terminal_neg", 0.0))]
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    problem = LinearProblem(SIGMA_CU * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx,
                            fem.Constant(mesh, 0.0) * v * ufl.dx, bcs=bcs, petsc_options_prefix="bent_",
                            petsc_options={"ksp_type": "preonly", "pc_type": "lu"})
    phi = problem.solve()
    G = fem.assemble_scalar(fem.form(SIGMA_CU * ufl.inner(ufl.grad(phi), ufl.grad(phi)) * ufl.dx))
    dg0 = fem.functionspace(mesh, ("DG", 0))
    jm = fem.Function(dg0)
    jm.interpolate(fem.Expression(SIGMA_CU * ufl.sqrt(ufl.inner(ufl.grad(phi), ufl.grad(phi))),
                                  dg0.element.interpolation_points))
    n = mesh.topology.index_map(3).size_local
    x = mesh.geometry.x[mesh.geometry.dofmaps[0][:n]].mean(axis=1)
    rc = r_i + th / 2
    cx, cz = 0.03 - rc, rc
    r = np.hypot(x[:, 0] - cx, x[:, 2] - cz)
    ang = np.degrees(np.arctan2(x[:, 0] - cx, cz - x[:, 2]))  # 0 at the bend start, 90 at its end
    mid = (ang > 30) & (ang < 60) & (np.abs(x[:, 1]) < 0.3 * W)
    layer = th / 4
    j_mean = G / (W * th)  # current at 1 V over the section
    ln = math.log((r_i + th) / r_i)
    sel_in, sel_out = mid & (r < r_i + layer), mid & (r > r_i + th - layer)
    j = jm.x.array[:n] / j_mean
    # analytic J(r) / J_mean = th / (r ln(r_o / r_i)) at each selected cell's centroid radius
    return {"peak": j.max(), "inner": j[sel_in].mean(), "outer": j[sel_out].mean(),
            "inner_exact": np.mean(th / (r[sel_in] * ln)), "outer_exact": np.mean(th / (r[sel_out] * ln)),
            "surface_exact": th / (r_i * ln)}


def test_inner_radius_crowding_falls_with_bend_radius():
    radii = (0.001, 0.002, 0.004, 0.008)
    prof = {r: _bend_profile(r) for r in radii}
    for r, p in prof.items():
        print(f"r_i = {r * 1e3:.0f} mm: inner layer J/J_mean = {p['inner']:.4f} (exact {p['inner_exact']:.4f}), "
              f"outer {p['outer']:.4f} (exact {p['outer_exact']:.4f}), peak {p['peak']:.4f} "
              f"(inner surface {p['surface_exact']:.4f})")
    for r0, r1 in zip(radii[:-1], radii[1:], strict=True):
        assert prof[r1]["inner"] < prof[r0]["inner"]
        assert prof[r1]["peak"] < prof[r0]["peak"]
    for r, p in prof.items():
        assert p["inner"] == pytest.approx(p["inner_exact"], rel=0.03), r
        assert p["outer"] == pytest.approx(p["outer_exact"], rel=0.03), r
        assert p["inner"] > p["outer"]
