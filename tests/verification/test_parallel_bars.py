"""Two parallel bars between equipotential terminals: PTC self-regulation at fixed voltage.

Two 400 mm bars: bar 2 is well cooled (h = 50), bar 3 poorly (h = 2); the terminal faces are clamped at
298.15 K. At fixed voltage the hotter bar ends
up carrying less current, and the total heat is below that of the same starting current
held fixed (positive temperature coefficient feedback of the conductors).
"""

from __future__ import annotations

import textwrap

import pytest
from mpi4py import MPI
from msmd_fixture import box_bundle

from busbarfem.case.loader import load_case
from busbarfem.coupling import Simulation

CASE = """
name: parallel_bars
materials:
  cu: {sigma_ref: 5.8e7, alpha: 0.00393, T_ref: 298.15, k: 398.0, rho: 8933.0, cp: 385.0}
geometry:
  busbars: [{path: [[0, 0], [0.01, 0]], width: 0.01, thickness: 0.001}]
load: LOAD
thermal:
  boundaries:
    - {type: convection, regions: [busbar_2], h: 50.0}
    - {type: convection, regions: [busbar_3], h: 2.0}
    - {type: temperature, regions: [terminal_pos, terminal_neg], T: 298.15}
solver: {analysis: steady, electrical_solver: lu, thermal_solver: lu}
"""


def bars(comm):
    def cu(name, lo, hi):
        return {"name": name, "lo": lo, "hi": hi, "material": "cu", "field": 1}

    t = 0.002
    boxes = [cu("busbar_1", (0, 0, 0), (0.01, 0.03, t)), cu("busbar_2", (0.01, 0, 0), (0.41, 0.01, t)),
             cu("busbar_3", (0.01, 0.02, 0), (0.41, 0.03, t)), cu("busbar_4", (0.41, 0, 0), (0.42, 0.03, t))]
    return box_bundle(comm, boxes, {"terminal_pos": ("busbar_1", "xmin"), "terminal_neg": ("busbar_4", "xmax")},
                      size=0.004)


def solve(tmp_path, load: str, bundle):
    path = tmp_path / f"case_{abs(hash(load))}.yaml"
    if MPI.COMM_WORLD.rank == 0:
        path.write_text(textwrap.dedent(CASE.replace("LOAD", load)))
    MPI.COMM_WORLD.barrier()
    case, src = load_case(path)
    sim = Simulation(case, src, MPI.COMM_WORLD)
    sim.setup(bundle=bundle)
    sim.result = sim.run()
    return sim


def bar_currents(sim):
    """Current in each bar: the volume integral of J_x over the bar divided by its length."""
    import ufl
    from dolfinx import fem

    b = sim.bundle
    msh = b.mesh
    J = sim.el.current_density()
    out = {}
    for name in ("busbar_2", "busbar_3"):
        # average of J_x over the bar volume times its cross-section = bar current (J_x uniform in x)
        cells = b.cells_of(name)
        ind = fem.Function(fem.functionspace(msh, ("DG", 0)))
        ind.x.array[cells] = 1.0
        jx = msh.comm.allreduce(fem.assemble_scalar(fem.form(ind * J[0] * ufl.dx)), op=MPI.SUM)
        out[name] = jx / 0.4  # divide by bar length: integral of J_x over volume = I * length
    return out


def test_hotter_parallel_bar_carries_less_current_at_fixed_voltage(tmp_path):
    bundle = bars(MPI.COMM_WORLD)
    V = 0.04
    fixed_v = solve(tmp_path, f"{{electrical_input_type: voltage, voltage: {V}}}", bundle)
    s = fixed_v.result
    I = bar_currents(fixed_v)
    assert abs(I["busbar_2"] + I["busbar_3"] - s["terminal"]["current_A"]) < 1e-3 * s["terminal"]["current_A"]
    # the poorly cooled bar is hotter and carries less current
    assert I["busbar_3"] < 0.98 * I["busbar_2"], I  # measured: 104.9 A vs 109.5 A
    # the same voltage on the cold assembly (a microvolt heats nothing) gives the start current
    cold = solve(tmp_path, "{electrical_input_type: voltage, voltage: 1.0e-6}", bundle)
    I0 = V / cold.result["terminal"]["resistance_ohm"]
    fixed_i = solve(tmp_path, f"{{electrical_input_type: current, current: {I0}}}", bundle)
    P_v = s["joule_power_W"]["total"]
    P_i = fixed_i.result["joule_power_W"]["total"]
    print(f"bar currents at {V} V: {I}; P(fixed V) = {P_v:.4f} W, P(fixed I0 = {I0:.2f} A) = {P_i:.4f} W")
    assert P_v < P_i
    assert s["terminal"]["current_A"] < I0  # PTC: the hot module draws less than it did cold
