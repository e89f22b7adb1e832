"""Bernardi cell heat (Bernardi, Pawlikowski, Newman, J. Electrochem. Soc. 132 (1985) 5).

Volumetric, with I > 0 on discharge:

    q_irr = I (OCV - V) / Vb          overpotential heat, >= 0 in normal operation
    q_rev = -I T dU/dT / Vb           entropic (reversible) heat, sign follows I dU/dT
    q     = q_irr + q_rev

In the MSMD model I/Vb is the transfer current density j and V = phi+ - phi-;
collector Joule heat sigma|grad phi|^2 is added by the FEM, not here.
"""

from __future__ import annotations

import numpy as np


def bernardi_heat(I, V_cell, ocv, T, dUdT, volume):
    """Volumetric Bernardi heat [W/m^3].

    Args:
        I: cell current [A] (> 0 discharge); scalar or array.
        V_cell: terminal voltage [V].
        ocv: open-circuit voltage at the cell's SOC and T [V].
        T: temperature [K].
        dUdT: entropic coefficient [V/K].
        volume: cell volume Vb [m^3].

    Returns:
        ``(q_irr, q_rev, q)`` in W/m^3, broadcast to a common shape.
    """
    I = np.asarray(I, dtype=float)
    q_irr = I * (np.asarray(ocv) - np.asarray(V_cell)) / volume
    q_rev = -I * np.asarray(T) * np.asarray(dUdT) / volume
    return q_irr, q_rev, q_irr + q_rev
