"""The 3D model and the lumped circuit run one CC-CV charge through the same stepper.

Both paths are :class:`busbarfem.coupling.stepper.TransientStepper` runs (checked by
counting its runs), so the CC -> CV switch and the end of the CV phase land at the same
times to the event tolerance, whatever the physics behind them: here the Thevenin cell of
test_events (one RC pair) as the lumped 1s1p circuit and as the 3D cell between copper
plates (~0.1 uOhm outside the ECM). The reference times are the scipy integration of
test_events (CC until 4.2 V at 1275.0 s, CV until C/50 at 3366.9 s).
"""

from __future__ import annotations

import pytest
from test_events import CCCV, TOL, cc_reference, cv_reference, lumped, run_3d

from busbarfem.coupling import stepper


@pytest.fixture
def count_stepper_runs(monkeypatch):
    runs = []
    real = stepper.TransientStepper.run

    def counted(self, *args, **kwargs):
        runs.append(type(self.system).__name__)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(stepper.TransientStepper, "run", counted)
    return runs


def test_3d_and_lumped_cccv_share_the_stepper_and_the_event_times(tmp_path, count_stepper_runs):
    t_switch, y = cc_reference(-5.0, until=lambda t, v, s: v - 4.2)
    t_end, _ = cv_reference(4.2, y, t_switch, 5.0 / 50)
    dt = 60.0
    res = lumped(CCCV, dt, maximum_cell_state_of_charge=1.0)
    sim = run_3d(tmp_path, "{steps: %s, maximum_cell_state_of_charge: 1.0}" % CCCV, dt)
    assert count_stepper_runs == ["LumpedSystem", "FEMSystem"]
    lumped_times = [e.time for e in res.events]
    fem_times = [e["time"] for e in sim.events]
    assert [e.kind for e in res.events] == [e["kind"] for e in sim.events] == ["voltage", "current"]
    # the switch: both within the tolerance after the reference crossing, and of each other
    assert t_switch - 1e-6 <= lumped_times[0] <= t_switch + TOL + 1e-6
    assert abs(fem_times[0] - lumped_times[0]) <= TOL + 0.05  # + the plates' 0.1 uOhm (test_events)
    # the end of the CV phase: the same held-voltage step control on both paths
    assert abs(fem_times[1] - lumped_times[1]) <= 2 * TOL + 0.05, (fem_times, lumped_times)
    assert abs(res.time[-1] - t_end) < 2.0 and abs(sim.rows[-1]["time [s]"] - t_end) < 2.0
    print("event times lumped", lumped_times, "3D", fem_times, "reference", (t_switch, t_end))
