"""Holm constriction: one circular spot of radius a between two large copper blocks.

For two half-spaces joined by a spot of radius a, ``R_c = rho / (2 a)`` (Holm). By
symmetry the spot plane is an equipotential at half the applied voltage, so we solve
one block (a cylinder of radius B and height H) with phi = 0 on the spot disk, the rest
of that face insulated, phi = 1 on the far face, on a quarter model (the two cut planes
are symmetry planes: natural Neumann). Then ``R_c = 2 (R_block - H / (sigma pi B^2))``.
For a finite block, Holm's correction ``psi = 1 - 1.41 a/B + ...`` makes the
normalised value approach 1 from below as B/a grows; the P1 discretisation error pushes
it up. This file also provides :func:`conduction_solve`, the tiny self-contained DOLFINx
Poisson solver the geometry verification tests share (``test_crowding``, ``test_vias``).
"""

from __future__ import annotations

import math

import dolfinx_solver  # noqa: F401  (must precede dolfinx, petsc4py, mpi4py)
import gmsh
import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx.fem.petsc import LinearProblem
from dolfinx.io.gmsh import model_to_mesh
from mpi4py import MPI

SIGMA_CU = 5.8e7  # S/m


def conduction_solve(sigma: dict[str, float], pos: str = "terminal_pos",
                     neg: str = "terminal_neg") -> dict:
    """Solve ``div(sigma grad phi) = 0`` with phi = 1 on ``pos`` and 0 on ``neg`` (P1).

    Converts the current gmsh model with ``dolfinx.io.gmsh.model_to_mesh`` on
    COMM_SELF. Returns the conductance ``G`` [S] (= power at 1 V), and the peak cellwise
    ``|J|`` [A/m^2] and Joule density [W/m^3] at 1 V with the cell centroid of the peak.
    """
    data = model_to_mesh(gmsh.model, MPI.COMM_SELF, 0)
    mesh, groups = data.mesh, data.physical_groups
    dg0 = fem.functionspace(mesh, ("DG", 0))
    s = fem.Function(dg0)
    for name, value in sigma.items():
        s.x.array[data.cell_tags.find(groups[name].tag)] = value
    assert np.all(s.x.array > 0), "a region has no conductivity"
    V = fem.functionspace(mesh, ("Lagrange", 1))
    bcs = [fem.dirichletbc(np.float64(val), fem.locate_dofs_topological(
        V, 2, data.facet_tags.find(groups[name].tag)), V) for name, val in ((pos, 1.0), (neg, 0.0))]
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = s * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
    L = fem.Constant(mesh, 0.0) * v * ufl.dx
    problem = LinearProblem(a, L, bcs=bcs, petsc_options_prefix="geomverif_",
                            petsc_options={"ksp_type": "preonly", "pc_type": "lu",
                                           "pc_factor_mat_solver_type": "mumps"})
    phi = problem.solve()
    G = fem.assemble_scalar(fem.form(s * ufl.inner(ufl.grad(phi), ufl.grad(phi)) * ufl.dx))
    jmag = fem.Function(dg0)
    jmag.interpolate(fem.Expression(s * ufl.sqrt(ufl.inner(ufl.grad(phi), ufl.grad(phi))),
                                    dg0.element.interpolation_points))
    j = jmag.x.array
    k = int(np.argmax(j))
    x = mesh.geometry.x[mesh.geometry.dofmaps[0][k]].mean(axis=0)
    return {"G": float(G), "J_max": float(j[k]), "q_max": float(np.max(j**2 / s.x.array)),
            "where": x, "cells": mesh.topology.index_map(3).size_local}


def holm_block(a: float, B: float, H: float) -> None:
    """Quarter cylinder (radius B, height H) with a spot disk of radius a at z = 0.

    Physical names: ``block`` (volume), ``terminal_neg`` (spot), ``terminal_pos`` (top).
    """
    occ = gmsh.model.occ
    body = occ.addCylinder(0, 0, 0, 0, 0, H, B, angle=math.pi / 2)
    spot = occ.addDisk(0, 0, 0, a, a)
    quarter = occ.addRectangle(0, 0, 0, 2 * a, 2 * a)
    spot_q, _ = occ.intersect([(2, spot)], [(2, quarter)])
    occ.fragment([(3, body)], spot_q)
    occ.synchronize()
    spot_faces, top_faces = [], []
    for _, s in gmsh.model.getEntities(2):
        x0, y0, z0, x1, y1, z1 = gmsh.model.getBoundingBox(2, s)
        tol = 1e-6 * a  # OCC bounding boxes are padded by ~1e-7
        if z1 < tol + 1e-7 and x1 < 1.01 * a and y1 < 1.01 * a:
            spot_faces.append(s)
        elif z0 > H - tol - 1e-7:
            top_faces.append(s)
    gmsh.model.addPhysicalGroup(3, [t for _, t in gmsh.model.getEntities(3)], name="block")
    gmsh.model.addPhysicalGroup(2, spot_faces, name="terminal_neg")
    gmsh.model.addPhysicalGroup(2, top_faces, name="terminal_pos")
    edge = [c for _, c in gmsh.model.getEntities(1)
            if gmsh.model.getType(1, c) in ("Circle", "Ellipse")
            and abs(gmsh.model.getBoundingBox(1, c)[3] - a) < 1e-3 * a]
    f = gmsh.model.mesh.field
    d = f.add("Distance")
    f.setNumbers(d, "CurvesList", edge)
    f.setNumber(d, "Sampling", 200)
    # geometric grading: size ~ distance to the spot edge (singular sqrt behaviour there)
    m = f.add("MathEval")
    f.setString(m, "F", f"Min({B / 6}, {a / 100} + 0.2 * F{d})")
    f.setAsBackgroundMesh(m)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    gmsh.model.mesh.generate(3)


def holm_ratio(B_over_a: float) -> tuple[float, int]:
    """Normalised constriction resistance R_c 2a / rho for a block of radius B = H."""
    a = 1e-3
    B = H = B_over_a * a
    gmsh.initialize()
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("holm")
        holm_block(a, B, H)
        res = conduction_solve({"block": SIGMA_CU})
    finally:
        gmsh.finalize()
    R_block = 1.0 / (4.0 * res["G"])  # quarter model
    R_c = 2.0 * (R_block - H / (SIGMA_CU * math.pi * B**2))
    return R_c * 2 * a * SIGMA_CU, res["cells"]


def holm_psi(eps: float) -> float:
    """Holm's finite-cylinder correction of the constriction resistance (eps = a/B)."""
    return 1 - 1.40925 * eps + 0.33959 * eps**3 + 0.06793 * eps**5


def test_holm_constriction_approaches_one():
    ratios = {}
    for b in (10.0, 30.0, 100.0):
        ratios[b], cells = holm_ratio(b)
        print(f"B/a = {b:4.0f}: R_c 2a/rho = {ratios[b]:.4f} (Holm psi {holm_psi(1 / b):.4f}, "
              f"{cells} tets)")
    # finite-block correction shrinks as B/a grows: the ratio climbs towards 1
    assert ratios[10.0] < ratios[30.0] < ratios[100.0]
    assert ratios[100.0] == pytest.approx(1.0, abs=0.05)
    # and it follows Holm's finite-size correction (P1 slightly underestimates R)
    for b, r in ratios.items():
        assert r == pytest.approx(holm_psi(1 / b), rel=0.03)
