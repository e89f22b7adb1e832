"""Virtual cell tests with PyBaMM: the data :func:`busbarfem.cells.fit.fit_ecm` identifies.

``pip install busbarfem[pybamm]``. A PyBaMM parameter set and model (SPM, SPMe, DFN)
play the cell on a test bench, isothermal at each requested temperature:

* a low-rate discharge (default C/20) from SOC 1 to the lower cut-off at ``T_ref``
  (OCV and capacity);
* an HPPC test at each temperature: from SOC 1, at every SOC level a 10 s discharge
  pulse at ``pulse_rate``, 40 s rest, 10 s charge pulse at 0.75 x ``pulse_rate``, 40 s
  rest, then ``step_rate`` discharge of ``soc_step`` of the capacity and a rest of
  ``rest_minutes``; the last level discharges to the cut-off.

SOC 1 and 0 are PyBaMM's own (electrode balance at the upper and lower voltage cut-off,
``ParameterValues.set_initial_state(1.0)``). Samples: 1 s during pulses and their rests,
5 s during the SOC steps, 30 s in long rests.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from busbarfem.cells.fit import CellTest

MODELS = ("SPM", "SPMe", "DFN")


def _pybamm():
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    try:
        import pybamm
    except ImportError:
        raise ImportError("PyBaMM is not installed; install it with `pip install busbarfem[pybamm]`") from None
    return pybamm


def parameter_values(parameter_set: str, temperature: float):
    """PyBaMM ParameterValues of ``parameter_set`` at an isothermal ``temperature`` [K],
    initial state SOC 1 (charged to the upper cut-off)."""
    pybamm = _pybamm()
    try:
        pv = pybamm.ParameterValues(parameter_set)
    except Exception as exc:  # pybamm raises several types for an unknown name
        raise ValueError(f"unknown PyBaMM parameter set {parameter_set!r}: {exc}") from None
    pv.update({"Ambient temperature [K]": temperature, "Initial temperature [K]": temperature})
    return pv


def make_model(name: str):
    """PyBaMM lithium-ion model by name (SPM, SPMe, DFN), isothermal."""
    pybamm = _pybamm()
    if name not in MODELS:
        raise ValueError(f"unknown PyBaMM model {name!r}; valid: {', '.join(MODELS)}")
    return getattr(pybamm.lithium_ion, name)()


def run_experiment(parameter_set: str, model: str, steps: list[str], temperature: float,
                   initial_soc: float | None = 1.0, voltage_margin: float = 0.0, name: str = "test") -> CellTest:
    """Run PyBaMM ``steps`` (experiment strings) and return the record as a :class:`CellTest`.

    Args:
        initial_soc: PyBaMM initial SOC (None: the parameter set's own initial state).
        voltage_margin: widen PyBaMM's cut-offs by this [V] so pulses beyond them run
            (the initial state is set with the original cut-offs first).
    """
    pybamm = _pybamm()
    pv = parameter_values(parameter_set, temperature)
    if initial_soc is not None:
        pv.set_initial_state(initial_soc)
    if voltage_margin:
        pv.update({"Upper voltage cut-off [V]": pv["Upper voltage cut-off [V]"] + voltage_margin,
                   "Lower voltage cut-off [V]": pv["Lower voltage cut-off [V]"] - voltage_margin})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = pybamm.Simulation(make_model(model), parameter_values=pv,
                                experiment=pybamm.Experiment(steps))
        sol = sim.solve()
    t = sol["Time [s]"].entries
    current = sol["Current [A]"].entries
    voltage = sol["Voltage [V]"].entries
    # PyBaMM repeats the step-edge time: the end of one step (old current), then the start
    # of the next (new current, the instantaneous response). The fit reads the pair as a
    # zero-length interval (no charge, no RC change), which identifies R0 exactly.
    t = t.copy()
    for i in np.nonzero(np.diff(t) < 1e-9)[0]:
        t[i + 1] = t[i]
    return CellTest(name=name, time=t - t[0], current=current, voltage=voltage,
                    temperature=np.full(t.size, temperature),
                    initial_soc=1.0 if initial_soc is None else float(initial_soc))


def hppc_steps(v_min: float, pulse_rate: float = 1.0, step_rate: float = 1.0, soc_step: float = 0.1,
               rest_minutes: float = 60.0, pulse_rates=None) -> list[str]:
    """Experiment strings of the HPPC protocol described in the module docstring
    (``pulse_rates``: a pulse pair at each of these C-rates per level instead of ``pulse_rate``)."""
    n_levels = int(round(1.0 / soc_step))
    minutes = 60.0 * soc_step / step_rate
    steps = ["Rest for 10 minutes (30 second period)"]
    rates = [pulse_rate] if pulse_rates is None else list(pulse_rates)
    for i in range(n_levels):
        for rate in rates:
            steps += [f"Discharge at {rate:g}C for 10 seconds (1 second period)",
                      "Rest for 40 seconds (1 second period)",
                      f"Charge at {0.75 * rate:g}C for 10 seconds (1 second period)",
                      "Rest for 40 seconds (1 second period)"]
        last = i == n_levels - 1
        steps.append(f"Discharge at {step_rate:g}C for {minutes * (2.0 if last else 1.0):g} minutes "
                     f"or until {v_min:g} V (5 second period)")
        steps += ["Rest for 2 minutes (1 second period)",
                  f"Rest for {max(rest_minutes - 2.0, 1.0):g} minutes (30 second period)"]
    return steps


def pybamm_tests(parameter_set: str = "Chen2020", model: str = "DFN",
                 temperatures=(283.15, 298.15, 313.15), T_ref: float = 298.15,
                 low_rate: float = 0.05, pulse_rate: float = 1.0, soc_step: float = 0.1,
                 rest_minutes: float = 60.0, pulse_rates=None) -> list[CellTest]:
    """The low-rate discharge at ``T_ref`` and an HPPC test at each temperature
    (``pulse_rates``: pulses at several C-rates per SOC level, which identify a
    current-dependent (Butler-Volmer) overpotential)."""
    pv = parameter_values(parameter_set, T_ref)
    v_min = float(pv["Lower voltage cut-off [V]"])
    tests = [run_experiment(parameter_set, model,
                            [f"Discharge at {low_rate:g}C until {v_min:g} V (60 second period)"],
                            T_ref, name=f"lowrate_{low_rate:g}C_{T_ref:.2f}K")]
    for T in temperatures:
        tests.append(run_experiment(parameter_set, model,
                                    hppc_steps(v_min, pulse_rate, pulse_rate, soc_step, rest_minutes,
                                               pulse_rates),
                                    float(T), voltage_margin=0.3, name=f"hppc_{float(T):.2f}K"))
    return tests


def cc_discharge(parameter_set: str, model: str, c_rate: float, temperature: float = 298.15,
                 initial_soc: float | None = None, period: float = 10.0) -> CellTest:
    """Constant-current discharge to the lower cut-off (default: from the parameter set's
    own initial state), sampled every ``period`` seconds."""
    pv = parameter_values(parameter_set, temperature)
    v_min = float(pv["Lower voltage cut-off [V]"])
    return run_experiment(parameter_set, model,
                          [f"Discharge at {c_rate:g}C until {v_min:g} V ({period:g} second period)"],
                          temperature, initial_soc=initial_soc, name=f"cc_{c_rate:g}C")


def electrode_ocv(parameter_set: str, soc_nodes=None, temperature: float = 298.15) -> list[list[float]]:
    """The parameter set's equilibrium OCV table ``[[soc, V], ...]``: U_p(y) - U_n(x) with the
    stoichiometries linear in SOC between PyBaMM's electrode balance at the lower (SOC 0)
    and upper (SOC 1) voltage cut-off (the SOC of :func:`pybamm_tests`)."""
    pybamm = _pybamm()
    pv = parameter_values(parameter_set, temperature)
    nodes = np.round(np.linspace(0.0, 1.0, 101), 4) if soc_nodes is None else np.asarray(soc_nodes, dtype=float)
    x0, x100, y100, y0 = pybamm.lithium_ion.ElectrodeSOHSolver(pv).get_min_max_stoichiometries()
    x = x0 + nodes * (x100 - x0)
    y = y0 + nodes * (y100 - y0)
    T = pybamm.Scalar(temperature)

    def ocp(name, sto):
        fn = pv[name]
        try:
            return float(pv.evaluate(fn(pybamm.Scalar(float(sto)), T)))
        except TypeError:  # OCP without a temperature argument
            return float(pv.evaluate(fn(pybamm.Scalar(float(sto)))))

    ocv = [ocp("Positive electrode OCP [V]", yy) - ocp("Negative electrode OCP [V]", xx)
           for xx, yy in zip(x, y, strict=True)]
    return [[float(s), round(v, 6)] for s, v in zip(nodes, ocv, strict=True)]
