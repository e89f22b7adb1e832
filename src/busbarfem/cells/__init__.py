"""Cell models: equivalent circuit (ECM) state and parameters, Bernardi heat, lumped module.

Pure numpy; the FEM couples to these through per-cell arrays in (stage, parallel) order.
"""

from busbarfem.cells.bernardi import bernardi_heat
from busbarfem.cells.ecm import CellParameters, ECMState, advance, arrhenius_factor, emf

__all__ = ["CellParameters", "ECMState", "advance", "arrhenius_factor", "bernardi_heat", "emf"]
