"""Set-up memory of a one-field conductor (issue 20, B1 peak memory): what the problems hold.

The L busbar with two steel bolts (two materials, a one-field conductor plus the thermal
problem), set up on a coarse P1 mesh (the B1 path: sigma per cell) without solving. Checks that the per-cell data the
session-7 cuts removed stay removed (shared spaces, no cell fields, no reference copies,
scalar coefficients for isotropic materials), and that the compressed sigma(T) is still
``sigma_ref / (1 + alpha (T_c - T_ref))`` per cell, evaluated here independently from the
material library at a non-uniform temperature.
"""

from __future__ import annotations

import gc

import dolfinx_solver  # noqa: F401
import numpy as np
import pytest
from helpers import EXAMPLES
from mpi4py import MPI

from dolfinx import fem


@pytest.fixture(scope="module")
def sim():
    from busbarfem.case.loader import load_case
    from busbarfem.coupling import Simulation

    case, src = load_case(EXAMPLES / "busbar_l_bolted.yaml", ["mesh.size=0.008", "mesh.order=1"])
    s = Simulation(case, src, MPI.COMM_WORLD, outdir=None, cache_dir=None)
    s.setup()
    yield s
    s.close()


def _dg0_arrays(msh) -> int:
    """Per-cell float arrays held by live DG0 Functions on ``msh`` (a 3-vector counts 3)."""
    n = 0
    for o in gc.get_objects():
        if isinstance(o, fem.Function) and o.function_space.mesh is msh:
            el = o.function_space.element.basix_element
            if el.degree == 0 and el.discontinuous:
                n += o.function_space.dofmap.index_map_bs
    return n


def test_spaces_are_shared_and_cell_fields_absent(sim):
    """One P1 space for potential and temperature, shared DG0 spaces, no cell fields or
    reference copies, scalar sigma and k: at most 4 per-cell DG0 arrays (19 before session 7)."""
    el, th, b = sim.el, sim.th, sim.bundle
    assert el.nfields == 1
    assert el.V is th.V  # one P1 dofmap for the potential and the temperature
    assert el.Q0 is b.space("DG", 0) and el.Q0v is b.space("DG", 0, (3,))
    assert all(f is None for f in (el.g, el.s_stage, el.emf, el.ocv, el.dudt))
    assert el.sig is None and el.alpha is None and el.Tref is None  # released after set-up
    assert el.sig_T[0].ufl_shape == () and th.k.ufl_shape == ()  # isotropic copper and steel
    # sigma(T), k, rho cp and the recorded |J|: 4 per-cell arrays (19 before session 7)
    gc.collect()
    assert _dg0_arrays(b.mesh) <= 4


def test_compressed_sigma_matches_the_material_law(sim):
    """Per-cell sigma(T) from the compressed table = sigma_ref / (1 + alpha (T_c - T_ref)) of the
    material library at a non-uniform temperature."""
    from busbarfem.materials import resolve_materials

    el, b = sim.el, sim.bundle
    mats = resolve_materials(sim.case.materials)
    x = el.T.function_space.tabulate_dof_coordinates()
    el.T.x.array[:] = 293.15 + 2.0e3 * x[:, 0] + 500.0 * x[:, 1]  # a few tens of K across the bar
    el.update_conductivity()
    assert el.conductivity_positive()
    tdim = b.mesh.topology.dim
    dm = el.T.function_space.dofmap.list
    q = el.Q0.dofmap.list[:, 0]
    nreg = 0
    for name in b.volume_names():
        m = mats[b.regions[name].material]
        cells = b.cells_of(name)
        Tc = el.T.x.array[dm[cells]].mean(axis=1)
        want = float(np.mean(m.sigma_ref)) / (1.0 + m.alpha * (Tc - m.T_ref))
        got = el.sig_T[0].x.array[q[cells]]
        np.testing.assert_allclose(got, want, rtol=1e-13)
        nreg += int(len(cells) > 0)
    assert nreg >= 2 or b.mesh.topology.index_map(tdim).size_local == 0  # copper and steel
    el.T.x.array[:] = sim.case.thermal.initial_temperature
