"""busbarfem: 3D finite-element electro-thermal solver for battery-module interconnects.

Data flow (docs/architecture.md): YAML -> :mod:`busbarfem.case` -> :mod:`busbarfem.geometry`
-> :mod:`busbarfem.mesh` -> :mod:`busbarfem.physics` and the physics contributions ->
:mod:`busbarfem.coupling` (model, steady solver, the shared transient stepper) -> step
records -> writers (:mod:`busbarfem.io`). Units are SI everywhere inside; positive
current is discharge.

The public API is what this package exports (see docs/api.md): :func:`load_case`,
:func:`case_from_dict`, :func:`run`, :func:`read_result`, :class:`Result`, :class:`Case`
and the errors :class:`CaseError` / :class:`SolveError`. Everything else is internal.
"""

__version__ = "0.1.0"

from busbarfem.api import Result, case_from_dict, load_case, read_result, run  # noqa: E402
from busbarfem.case.model import Case  # noqa: E402
from busbarfem.errors import CaseError, SolveError  # noqa: E402

__all__ = ["Case", "CaseError", "Result", "SolveError", "case_from_dict", "load_case", "read_result", "run",
           "__version__"]
