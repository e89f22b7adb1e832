"""1s4p with unequal busbar paths: the 3D current split against a resistor network.

Four cells sit in a row along x; their positive tabs are joined by a thin nickel plate on
top and their negative tabs by one underneath; both module terminals are the +x end
faces of the plates, so the cell nearest the terminals has the shortest path. The
network oracle uses the plate segment resistances rho(T) L / (w t) computed separately
from the 3D model; the 1 mm copper tabs short the 0.2 mm nickel plate over their 5 mm
footprints, so the nodes are the footprints and the segments run between tab edges.
Each cell is E - R0 I (issue 4 acceptance: within 2 %; measured 0.3 % at this mesh, while a
tab-centre network is off by up to 14 %).
"""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI
from msmd_fixture import box_bundle
from test_msmd import make_sim

H, PITCH, W, TP, TAB = 0.04, 0.03, 0.02, 0.0002, 0.005  # cell height, pitch, plate width/thickness, tab length
SIG_NI = 1.43e7
R0, E, I_LOAD = 0.002, 3.7, 20.0
SIZE = 0.001


def geometry(comm):
    boxes, x_end = [], 3 * PITCH + 0.02 + 0.01
    for p in range(4):
        x0 = p * PITCH
        boxes.append({"name": f"cell_1_{p + 1}", "lo": (x0, 0, 0), "hi": (x0 + 0.02, W, H), "kind": "cell",
                      "field": None, "stage": 1, "parallel": p + 1})
        xc = x0 + 0.01
        boxes.append({"name": f"tab_pos_1_{p + 1}", "lo": (xc - TAB / 2, 0, H), "hi": (xc + TAB / 2, W, H + 0.001),
                      "material": "copper", "field": 1})
        boxes.append({"name": f"tab_neg_1_{p + 1}", "lo": (xc - TAB / 2, 0, -0.001), "hi": (xc + TAB / 2, W, 0),
                      "material": "copper", "field": 2})
    boxes.append({"name": "busbar_1", "lo": (0, 0, H + 0.001), "hi": (x_end, W, H + 0.001 + TP),
                  "material": "nickel", "field": 1})
    boxes.append({"name": "busbar_2", "lo": (0, 0, -0.001 - TP), "hi": (x_end, W, -0.001),
                  "material": "nickel", "field": 2})
    return box_bundle(comm, boxes, {"terminal_pos": ("busbar_1", "xmax"), "terminal_neg": ("busbar_2", "xmax")},
                      size=SIZE), x_end


def network_split(x_end: float) -> np.ndarray:
    """Nodal analysis: nodes at the tab centres on both plates, terminal at x_end."""
    xc = np.array([p * PITCH + 0.01 for p in range(4)])
    sigma = SIG_NI / (1 + 0.0068 * (298.15 - 293.15))  # nickel at the initial temperature
    length = np.diff(np.append(xc, x_end)) - np.array([TAB, TAB, TAB, TAB / 2])  # edge to edge
    seg = length / (sigma * W * TP)
    # unknowns: top potentials u1..u4, bottom w1..w4, top terminal V; bottom terminal = 0.
    # KCL rows: sum of currents leaving a node through conductances = current injected.
    n = 9
    A, b = np.zeros((n, n)), np.zeros(n)
    g0 = 1 / R0
    for p in range(4):
        # cell p drives I_p = g0 (E - u_p + w_p) from w_p to u_p
        A[p, p] += g0
        A[p, 4 + p] -= g0
        b[p] += g0 * E
        A[4 + p, 4 + p] += g0
        A[4 + p, p] -= g0
        b[4 + p] -= g0 * E

    def link(i, j, g):
        A[i, i] += g
        A[i, j] -= g
        A[j, j] += g
        A[j, i] -= g

    for p in range(3):
        link(p, p + 1, 1 / seg[p])
        link(4 + p, 4 + p + 1, 1 / seg[p])
    link(3, 8, 1 / seg[3])    # top plate to its terminal node
    A[7, 7] += 1 / seg[3]     # bottom plate to the grounded terminal
    b[8] -= I_LOAD            # the load current leaves the top terminal
    sol = np.linalg.solve(A, b)
    u, w = sol[:4], sol[4:8]
    return (E - (u - w)) / R0


@pytest.mark.slow
def test_current_split_matches_resistor_network(tmp_path):
    bundle, x_end = geometry(MPI.COMM_WORLD)
    sim = make_sim(tmp_path, bundle, ocv=E, ocv2=E + 1e-9, r0=R0, current=I_LOAD)
    sim.model.electrical_step(0.0, 1)
    I3 = sim.cells.current
    I_net = network_split(x_end)
    assert abs(I_net.sum() - I_LOAD) < 1e-9
    print("3D", I3, "network", I_net)
    assert np.argmax(I3) == 3 and np.all(np.diff(I3) > 0)  # nearest the terminals carries most
    assert I3[3] / I3[0] > 1.2                                # a real imbalance, not noise
    np.testing.assert_allclose(I3, I_net, rtol=0.02)
