"""Derive the LG M50 full-cell OCV(SOC) and dU/dT(SOC) tables in ``LG_M50.yaml``.

Not imported by busbarfem; kept next to the data so the tables can be regenerated
and checked. Run: ``python derive_LG_M50.py`` (numpy only).

Method (a standard electrode-balancing / "eSOH" calculation):
  * electrode open-circuit potentials U_n(x), U_p(y): the fits of Chen et al. 2020
    (J. Electrochem. Soc. 167 080534) as coded in PyBaMM's ``Chen2020`` parameter set;
  * electrode capacities Q = c_max * eps_s * L * A * F and the cyclable lithium from the
    initial (fully charged) concentrations of the same parameter set;
  * x_0, x_100 (and y_0, y_100) solve U_p(y) - U_n(x) = 2.5 V and 4.2 V;
  * full-cell OCV(SOC) = U_p(y(SOC)) - U_n(x(SOC)) with x, y linear in SOC;
  * entropic coefficient dU/dT(SOC) = dU_p/dT(y) - dU_n/dT(x) with the electrode fits
    of O'Regan et al. 2022 (Electrochim. Acta 425 140700, as coded in PyBaMM's
    ``ORegan2022`` set), mapped to SOC with that set's own electrode balance (its
    stoichiometries refer to its own c_max values).
"""

from __future__ import annotations

import numpy as np

FARADAY = 96485.33212  # C/mol


def u_neg(x):
    """Graphite OCP [V] vs stoichiometry (Chen 2020)."""
    return (
        1.9793 * np.exp(-39.3631 * x)
        + 0.2482
        - 0.0909 * np.tanh(29.8538 * (x - 0.1234))
        - 0.04478 * np.tanh(14.9159 * (x - 0.2769))
        - 0.0205 * np.tanh(30.4444 * (x - 0.6103))
    )


def u_pos(y):
    """NMC811 OCP [V] vs stoichiometry (Chen 2020)."""
    return (
        -0.8090 * y
        + 4.4875
        - 0.0428 * np.tanh(18.5138 * (y - 0.5542))
        - 17.7326 * np.tanh(15.7890 * (y - 0.3117))
        + 17.5842 * np.tanh(15.9308 * (y - 0.3120))
    )


def dudt_neg(x):
    """Graphite entropic coefficient [V/K] (O'Regan 2022; the tanh term is zero there)."""
    return (-0.1112 * x + 0.02914 + 0.3561 * np.exp(-((x - 0.08309) ** 2) / 0.004616)) / 1000


def dudt_pos(y):
    """NMC811 entropic coefficient [V/K] (O'Regan 2022)."""
    return (
        0.04006 * np.exp(-((y - 0.2828) ** 2) / 0.0009855)
        - 0.06656 * np.exp(-((y - 0.8032) ** 2) / 0.02179)
    ) / 1000


def electrode_window(cn_max, cp_max, cn_full, cp_full, v_min=2.5, v_max=4.2):
    """Stoichiometry window (x0, x100, y0, y100) and capacity [Ah] between v_min and v_max."""
    area = 0.065 * 1.58  # electrode height x width [m^2], Chen 2020
    q_n = cn_max * 0.75 * 85.2e-6 * area * FARADAY / 3600
    q_p = cp_max * 0.665 * 75.6e-6 * area * FARADAY / 3600
    n_li = cn_full / cn_max * q_n + cp_full / cp_max * q_p

    def ocv(x):
        return u_pos((n_li - x * q_n) / q_p) - u_neg(x)

    def solve(v):
        lo, hi = 1e-4, min(1.0, n_li / q_n) - 1e-6
        for _ in range(200):  # OCV increases with x
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if ocv(mid) < v else (lo, mid)
        return 0.5 * (lo + hi)

    x0, x100 = solve(v_min), solve(v_max)
    y0, y100 = (n_li - x0 * q_n) / q_p, (n_li - x100 * q_n) / q_p
    return x0, x100, y0, y100, (x100 - x0) * q_n


def main():
    """Print the YAML tables."""
    cx0, cx100, cy0, cy100, cap = electrode_window(33133, 63104, 29866, 17038)
    ox0, ox100, oy0, oy100, _ = electrode_window(29583, 51765, 28866, 13975)
    print(f"# Chen2020 window: x {cx0:.4f}..{cx100:.4f}, y {cy0:.4f}..{cy100:.4f}, {cap:.3f} Ah")
    print(f"# ORegan2022 window: x {ox0:.4f}..{ox100:.4f}, y {oy0:.4f}..{oy100:.4f}")
    soc = np.round(np.linspace(0.0, 1.0, 41), 3)
    print("ocv:")
    for s in soc:
        v = u_pos(cy0 + s * (cy100 - cy0)) - u_neg(cx0 + s * (cx100 - cx0))
        print(f"  - [{s:.3f}, {v:.4f}]")
    print("entropic_coefficient:")
    for s in soc:
        d = dudt_pos(oy0 + s * (oy100 - oy0)) - dudt_neg(ox0 + s * (ox100 - ox0))
        print(f"  - [{s:.3f}, {d:.3e}]")


def jellyroll_conductivity(temperature=298.15):
    """Series (through-layer) and parallel (along-layer) conductivity [W/m/K]."""
    t = temperature
    layers = [  # (thickness [m], conductivity [W/m/K]); ORegan2022 wet components
        (12e-6, 401.0),  # Cu foil
        (2 * 85.2e-6, -2.61e-4 * t**2 + 0.1726 * t - 24.49),  # wet negative
        (2 * 12e-6, 0.3344),  # wet separator
        (2 * 75.6e-6, 2.063e-5 * t**2 - 0.01127 * t + 2.331),  # wet positive
        (16e-6, 237.0),  # Al foil
    ]
    total = sum(h for h, _ in layers)
    series = total / sum(h / k for h, k in layers)
    parallel = sum(h * k for h, k in layers) / total
    return series, parallel


if __name__ == "__main__":
    print("# jelly-roll k (series, parallel) [W/m/K]: %.2f, %.1f" % jellyroll_conductivity())
    main()
