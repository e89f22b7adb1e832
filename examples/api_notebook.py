# %% [markdown]
# # busbarfem from Python (notebook-style walk-through)
#
# Run it as a script (`python examples/api_notebook.py`) or open it as a notebook
# (the `# %%` markers are Jupyter/VS Code cells). Under MPI every rank runs the same
# script: `mpirun -n 2 python examples/api_notebook.py`. `--quick` uses coarse meshes.

# %%
import sys
import tempfile
from pathlib import Path

import busbarfem

HERE = Path(__file__).resolve().parent
quick = "--quick" in sys.argv
coarse = ["mesh.size=0.004"] if quick else []

# %% [markdown]
# ## 1. A case file, with a change on top (as `--set` on the command line)

# %%
case = busbarfem.load_case(HERE / "busbar_straight.yaml", overrides=["load.current=150", *coarse])
result = busbarfem.run(case)
term = result.summary["terminal"]
print(f"R = {term['voltage_V'] / term['current_A'] * 1e6:.2f} micro-ohm at {term['current_A']:.0f} A")
print(f"T_max = {result.summary['T_max']['value']:.2f} K in {result.summary['T_max']['region']}")

# %% [markdown]
# ## 2. The same case edited in Python (the pydantic models are the case-file schema)

# %%
wider = case.model_copy(deep=True)
wider.geometry.busbars[0].width = 0.015
r2 = busbarfem.run(wider)
print(f"15 mm wide: R = {r2.summary['terminal']['voltage_V'] / 150 * 1e6:.2f} micro-ohm")

# %% [markdown]
# ## 3. A module as a lumped circuit: time series and per-cell table

# %%
module = busbarfem.load_case(HERE / "module_4s2p_discharge.yaml")
lumped = busbarfem.run(module, lumped=True)
print(f"stop: {lumped.stop_reason}; delivered {lumped.summary['energy']['charge_out_Ah']:.3f} Ah")
for cell in lumped.cells()[:2]:
    print(f"  {cell['name']}: SOC {cell['soc']:.3f}, {cell['current_A']:.3f} A")
with tempfile.TemporaryDirectory() as tmp:
    ax = lumped.plot("voltage [V]")
    ax.figure.savefig(Path(tmp) / "voltage.png")
try:
    print(lumped.dataframe().tail(3))   # pandas is optional
except ImportError:
    pass
