"""busbarfem: 3D finite-element electro-thermal solver for battery-module interconnects.

The data flow is one way: YAML -> :mod:`busbarfem.case` -> :mod:`busbarfem.geometry`
-> :mod:`busbarfem.mesh` -> :mod:`busbarfem.physics` -> :mod:`busbarfem.coupling`
-> :mod:`busbarfem.io`. Units are SI everywhere inside; positive current is discharge.
"""

__version__ = "0.1.0"
