"""Benchmark: the lumped 8s6p CC-CV (``examples/module_8s6p_cccv.yaml`` as ``run --lumped``
runs it) and its step sequence: attempts and accepted steps per load step (CC, CV), held
steps, switch and stop time, final cell states; with ``--compare other.json`` the largest
final-state differences against another run of this script (e.g. main, or a fine-step one).
``--target-change x`` runs with the relative-change hold control on every held step at ``x``
(``HoldCurrentControl(rtol=None)``; a fine reference: 0.002), ``--isothermal`` without the
lumped thermal model. Measured, never asserted.

    .venv/bin/python scripts/bench/cccv_lumped.py --out /tmp/lumped.json [--compare /tmp/main.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", default=str(Path(__file__).resolve().parents[2] / "examples" / "module_8s6p_cccv.yaml"))
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--compare", type=Path, default=None)
    p.add_argument("--target-change", type=float, default=None)
    p.add_argument("--isothermal", action="store_true", help="no lumped thermal model (cells at T_ref)")
    a = p.parse_args()
    import busbarfem.cells.lumped as lumped_mod
    from busbarfem import events
    from busbarfem.case.loader import load_case
    from busbarfem.lumped import cell_volume_area
    from busbarfem.cells.lumped import LumpedThermal

    if a.target_change is not None:
        orig_init = events.HoldCurrentControl.__init__

        def init(self, *args, **kw):
            orig_init(self, *args, **kw)
            self.target_change = a.target_change
            self.rtol = None  # the relative-change control on every step (and the linear shape)
        events.HoldCurrentControl.__init__ = init

    case, _src = load_case(a.case)
    mod = case.geometry.module
    vol, area = cell_volume_area(mod.cell)
    conv = [bc for bc in case.thermal.boundaries if bc.type == "convection"][0]
    thermal = LumpedThermal(h=conv.h, T_ambient=case.thermal.ambient_of(conv), T_initial=case.thermal.initial_temperature,
                            area=area, volume=vol)
    trials: list = []
    orig = lumped_mod.LumpedSystem.trial

    def counting(self, t, h, step, start, i_start):
        trials.append((step, t, h, self.controller.step_index))
        return orig(self, t, h, step, start, i_start)

    lumped_mod.LumpedSystem.trial = counting
    s = case.solver
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    res = lumped_mod.run_lumped(case.cell, case.load, mod.series, mod.parallel, pcu=mod.parallel_connected_units,
                                t_end=s.t_end or 48 * 3600.0, dt=s.dt_max or s.dt,
                                thermal=None if a.isothermal else thermal,
                                event_tolerance=s.event_tolerance)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    per_phase: dict[int, dict] = {}
    steps: dict[int, int] = {}
    for step, _t, _h, idx in trials:
        ph = per_phase.setdefault(idx, {"trials": 0, "accepted": 0})
        ph["trials"] += 1
        steps.setdefault(step, idx)
    for step, idx in steps.items():
        per_phase[idx]["accepted"] += 1
    t_switch = res.events[0].time if res.events else None
    held = np.diff(res.time)[res.time[1:] > (t_switch or np.inf) + 1e-9]
    out = {"trials": len(trials), "accepted": len(res.time) - 1,
           "per_load_step": {str(k): v for k, v in sorted(per_phase.items())},
           "held_steps": int(held.size), "first_held_steps_s": held[:6].tolist(), "largest_held_step_s": float(held.max()) if held.size else None,
           "switch_time_s": t_switch, "stop_time_s": float(res.time[-1]), "stop_reason": res.stop_reason,
           "final": {"soc": res.cell_soc[-1].ravel().tolist(), "current": res.cell_current[-1].ravel().tolist(),
                     "voltage": res.cell_voltage[-1].ravel().tolist(), "T": res.cell_temperature[-1].ravel().tolist()},
           "cv_time_s": res.time[res.time > (t_switch or np.inf) - 1e-9].tolist(),
           "cv_module_current_A": res.module_current[res.time > (t_switch or np.inf) - 1e-9].tolist(),
           "wall_s": wall, "cpu_s": cpu, "load_average": load0}
    if a.compare is not None:
        ref = json.loads(a.compare.read_text())
        out["vs"] = {"file": str(a.compare), "stop_time_s": out["stop_time_s"] - ref["stop_time_s"],
                     "switch_time_s": (out["switch_time_s"] or 0) - (ref["switch_time_s"] or 0)}
        for k in ("soc", "current", "voltage", "T"):
            out["vs"]["max_abs_d_" + k] = float(np.max(np.abs(np.subtract(out["final"][k], ref["final"][k]))))
        # CV module current against the other run's, interpolated at this run's times
        tr, ir = np.asarray(ref["cv_time_s"]), np.asarray(ref["cv_module_current_A"])
        tt = np.asarray(out["cv_time_s"])
        k = (tt >= tr[0]) & (tt <= tr[-1])
        out["vs"]["max_abs_d_cv_module_current_A"] = float(np.max(np.abs(np.asarray(out["cv_module_current_A"])[k] - np.interp(tt[k], tr, ir))))
    brief = {k: v for k, v in out.items() if k not in ("final", "cv_time_s", "cv_module_current_A")}
    print(json.dumps(brief, indent=1))
    if a.out is not None:
        a.out.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
