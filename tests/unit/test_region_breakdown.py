"""RegionBreakdown: per-region integrals, the summed ``total`` and the whole-mesh ``extra`` densities.

Reference: the previous form (the total as one more DG0 component, integrated again) and
scalar assemblies of each density per region (DOLFINx ``assemble_scalar``), serial or on
2 ranks (``mpirun -n 2 python -m pytest`` on this file).
"""

import dolfinx_solver  # noqa: F401
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from dolfinx import fem, la, mesh

from busbarfem.analysis.regions import RegionBreakdown


class _Bundle:
    """Unit cube, region 'a' (x < 0.5, tag 1) and 'b' (tag 2)."""

    def __init__(self):
        self.mesh = mesh.create_unit_cube(MPI.COMM_WORLD, 6, 6, 6)
        self.comm = self.mesh.comm
        imap = self.mesh.topology.index_map(3)
        n = imap.size_local + imap.num_ghosts
        mid = mesh.compute_midpoints(self.mesh, 3, np.arange(n, dtype=np.int32))
        vals = np.where(mid[:, 0] < 0.5, 1, 2).astype(np.int32)
        self.cell_tags = mesh.meshtags(self.mesh, 3, np.arange(n, dtype=np.int32), vals)
        self.tags = {"a": 1, "b": 2}

    def volume_names(self):
        return ["a", "b"]


def _fields(b):
    V = fem.functionspace(b.mesh, ("Lagrange", 1))
    g, h = fem.Function(V), fem.Function(V)
    g.interpolate(lambda x: 1.0 + x[0] + x[1] * x[2])
    h.interpolate(lambda x: 0.5 + x[2] ** 2)
    return g, h


def _old_breakdown(b, densities):
    """The breakdown as it was: the total as its own component in the one form."""
    dens = {**densities, "total": sum(densities.values())}
    Q0 = fem.functionspace(b.mesh, ("DG", 0, (len(dens),)))
    v = ufl.TestFunction(Q0)
    form = fem.form(sum(d * v[k] for k, d in enumerate(dens.values())) * ufl.dx(domain=b.mesh))
    vec = fem.assemble_vector(form)
    vec.scatter_reverse(la.InsertMode.add)
    nloc = b.mesh.topology.index_map(3).size_local
    vals = vec.array.reshape(-1, len(dens))[:nloc]
    out = {}
    for nm in b.volume_names():
        cells = b.cell_tags.find(b.tags[nm])
        cells = cells[cells < nloc]
        s = b.comm.allreduce(vals[cells].sum(axis=0), op=MPI.SUM)
        for j, k in enumerate(dens):
            out.setdefault(k, {})[nm] = float(s[j])
    return out


def test_breakdown_total_and_extra_match_the_previous_form_and_scalar_integrals():
    b = _Bundle()
    g, h = _fields(b)
    densities = {"joule": g * h, "rev": g / (1.0 + h)}   # polynomial and rational
    extra = {"enthalpy": g * g / (2.0 + h * g)}          # rational, its own quadrature rule
    rb = RegionBreakdown(b, densities, total="total", extra=extra)
    new = rb.by_region()
    old = _old_breakdown(b, densities)
    assert set(new) == {"joule", "rev", "total"}
    for k in new:
        for nm in ("a", "b"):
            assert abs(new[k][nm] - old[k][nm]) <= 1e-12 * abs(old[k][nm]), (k, nm)
    # independent: per-region scalar integrals of the polynomial density (exact under any rule)
    dxr = ufl.Measure("dx", domain=b.mesh, subdomain_data=b.cell_tags)
    for nm, tag in b.tags.items():
        ref = b.comm.allreduce(fem.assemble_scalar(fem.form(g * h * dxr(tag))), op=MPI.SUM)
        assert abs(new["joule"][nm] - ref) <= 1e-12 * abs(ref)
    # the extra density: whole-mesh integral = its own scalar form (same estimated rule)
    ref_e = b.comm.allreduce(fem.assemble_scalar(fem.form(extra["enthalpy"] * ufl.dx(domain=b.mesh))), op=MPI.SUM)
    assert abs(rb.extra_totals["enthalpy"] - ref_e) <= 1e-12 * abs(ref_e)
    # nothing of the extra density leaks into the heat entries
    assert abs(sum(new["total"].values()) - sum(old["total"].values())) <= 1e-12 * abs(sum(old["total"].values()))


def test_breakdown_without_total_or_extra():
    b = _Bundle()
    g, h = _fields(b)
    rb = RegionBreakdown(b, {"q": g * h})
    out = rb.by_region()
    assert set(out) == {"q"} and rb.extra_totals == {}
    tot = b.comm.allreduce(fem.assemble_scalar(fem.form(g * h * ufl.dx(domain=b.mesh))), op=MPI.SUM)
    assert abs(sum(out["q"].values()) - tot) <= 1e-12 * abs(tot)


def test_integrator_of_one_function_is_the_assembled_integral():
    """RegionIntegrator's matrix path (a density that is one scalar Function: W T with W
    assembled once) against the vector assembly of the same density and, per region, the
    exact integral of a quadratic T (P2 holds it exactly): int over x < 0.5 of
    300 + x^2 + 3 y z = 150 + 1/24 + 3/8, over x > 0.5: 150 + 7/24 + 3/8."""
    from busbarfem.analysis.regions import RegionIntegrator

    b = _Bundle()
    for deg in (1, 2):
        V = fem.functionspace(b.mesh, ("Lagrange", deg))
        T = fem.Function(V)
        T.interpolate(lambda x: 300.0 + x[0] ** 2 + 3.0 * x[1] * x[2])
        ri = RegionIntegrator(b, T)
        assert ri._W is not None  # the matrix path
        slow = RegionIntegrator(b, T * fem.Constant(b.mesh, 1.0))  # an expression: the vector assembly
        assert slow._W is None
        assert np.max(np.abs(ri.per_cell() - slow.per_cell())) <= 1e-13 * np.max(np.abs(slow.per_cell()))
        got = ri.by_region()
        if deg == 2:
            assert abs(got["a"] - (150 + 1 / 24 + 3 / 8)) < 1e-12
            assert abs(got["b"] - (150 + 7 / 24 + 3 / 8)) < 1e-12
        T.x.array[:] += 1.0  # a later call sees the new values
        assert abs(ri.by_region()["a"] - got["a"] - 0.5) < 1e-12


def test_integrator_restricted_to_regions_loops_over_their_cells_only():
    """``regions=``: a density that is zero outside them integrates as without the restriction;
    one that is not is cut to them (the others read 0)."""
    from busbarfem.analysis.regions import RegionIntegrator

    b = _Bundle()
    g, h = _fields(b)
    Q0 = fem.functionspace(b.mesh, ("DG", 0))
    ind = fem.Function(Q0)  # 1 on region 'a' only
    ind.x.array[b.cell_tags.find(1)] = 1.0
    dens = ind * g * h
    full, cut = RegionIntegrator(b, dens).by_region(), RegionIntegrator(b, dens, regions=["a"]).by_region()
    assert full["b"] == 0.0 and cut["b"] == 0.0
    assert abs(cut["a"] - full["a"]) <= 1e-14 * abs(full["a"])
    both = RegionIntegrator(b, g * h).by_region()
    only_b = RegionIntegrator(b, g * h, regions=["b"]).by_region()
    assert only_b["a"] == 0.0 and abs(only_b["b"] - both["b"]) <= 1e-14 * abs(both["b"])


def _indicator(b, tag):
    Q0 = fem.functionspace(b.mesh, ("DG", 0))
    ind = fem.Function(Q0)
    ind.x.array[b.cell_tags.find(tag)] = 1.0
    return ind


def test_split_by_support_puts_every_cell_in_one_integral():
    """Whole-mesh integrands join each support's and alone cover the rest; overlapping
    supports, or no whole-mesh integrand, keep the integrals as given."""
    from busbarfem.analysis.regions import split_by_support

    b = _Bundle()
    got = split_by_support(b, [(1.0, None), (2.0, [1]), (4.0, (1,))])
    assert got == [(7.0, (1,)), (1.0, (2,))]
    assert split_by_support(b, [(1.0, None), (2.0, (1, 2))]) == [(3.0, (1, 2))]  # nothing left over
    assert split_by_support(b, [(1.0, None), (2.0, (1,)), (4.0, (1, 2))]) == [(1.0, None), (2.0, (1,)), (4.0, (1, 2))]
    assert split_by_support(b, [(2.0, (2,))]) == [(2.0, (2,))]
    assert split_by_support(b, [(1.0, None)]) == [(1.0, None)]


def test_breakdown_with_a_support_equals_the_whole_mesh_integrals():
    """A density that is zero outside region 'a', integrated over 'a' only (``support``), with
    and without extras: the same per-region values and extra totals as the whole-mesh form
    (summed in another order: 1e-13); the unsupported density is unchanged."""
    b = _Bundle()
    g, h = _fields(b)
    ind = _indicator(b, 1)
    densities = {"joule": g * h, "bern": ind * g / (1.0 + h)}
    extra = {"enthalpy": ind * g * g}
    for ex in ({}, extra):
        ref = RegionBreakdown(b, densities, total="total", extra=ex)
        sup = RegionBreakdown(b, densities, total="total", extra=ex, support={"bern": (1,), "enthalpy": (1,)})
        r, s = ref.by_region(), sup.by_region()
        for k in r:
            for nm in ("a", "b"):
                assert abs(s[k][nm] - r[k][nm]) <= 1e-13 * max(abs(r[k][nm]), 1e-300), (k, nm, ex)
        assert s["bern"]["b"] == 0.0
        for k in ex:
            assert abs(sup.extra_totals[k] - ref.extra_totals[k]) <= 1e-13 * abs(ref.extra_totals[k])
    # the support is trusted: a density that is not zero outside it is cut to it
    cut = RegionBreakdown(b, {"q": g * h}, support={"q": (2,)}).by_region()
    assert cut["q"]["a"] == 0.0 and cut["q"]["b"] > 0.0


def test_thermal_source_parts_assemble_the_whole_mesh_source():
    """``ThermalProblem.set_source(parts=...)``: (q, v) from a whole-mesh part and a part over
    region 'a' (zero outside it) equals (q, v) of their sum over the whole mesh, entry for
    entry to 1e-14, and sums to the generated heat (q, 1)."""
    from dolfinx.fem import petsc as fpetsc

    from busbarfem.physics.thermal import ThermalProblem

    b = _Bundle()
    b.space = lambda fam, deg, shape=(): fem.functionspace(b.mesh, (fam, deg, shape) if shape else (fam, deg))
    b.cells_of = lambda name: b.cell_tags.find(b.tags[name])
    g, h = _fields(b)
    ind = _indicator(b, 1)
    whole, inside = g * h, ind * g * g * h   # degree 2 and 3 on the P1 test function
    props = {"a": ([200.0] * 3, 2700.0, 900.0), "b": ([200.0] * 3, 2700.0, 900.0)}
    th = ThermalProblem(b, props, [], None, 300.0)
    th.set_source(whole + inside, parts=[(whole, None), (inside, (1,))])
    ref = fpetsc.assemble_vector(fem.form((whole + inside) * ufl.TestFunction(th.V) * ufl.dx(domain=b.mesh)))
    got = fpetsc.create_vector(th.V)
    fpetsc.assemble_vector(got, th.L_q)
    for vec in (ref, got):
        vec.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    assert np.max(np.abs(got.array_r - ref.array_r)) <= 1e-14 * np.max(np.abs(ref.array_r))
    q1 = b.comm.allreduce(fem.assemble_scalar(fem.form((whole + inside) * ufl.dx(domain=b.mesh))), op=MPI.SUM)
    assert abs(b.comm.allreduce(float(got.array_r.sum()), op=MPI.SUM) - q1) <= 1e-13 * abs(q1)
    th.destroy()
