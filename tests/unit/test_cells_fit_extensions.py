"""fit-ecm's model extensions (issue 17): the diffusion lag and the Butler-Volmer term are
identified back from synthetic data of a known ECM that has them."""

import numpy as np
import pytest

from busbarfem.cells.fit import CellTest, FitOptions, fit_ecm, simulate_ecm

OCV = [[s, 3.0 + 1.2 * s - 0.3 * (1 - s) ** 6] for s in np.linspace(0.0, 1.0, 21)]
TRUE = {"capacity": 2.0, "ocv": OCV, "R0": [[0.0, 0.02], [1.0, 0.015]],
        "rc_pairs": [{"R": [[0.0, 0.01], [1.0, 0.008]], "tau": 30.0}],
        "diffusion": {"tau": 900.0, "lag_1C": 0.03},
        "kinetics": {"R": [[0.0, 0.012], [1.0, 0.01]], "current_scale": 3.0}}


def pulse_test():
    """From SOC 1: at each of 8 levels 10 s pulses at 1, 2, 4 A (and 0.75x charge) with
    rests, then a 0.1 SOC step at 2 A and a 20 min rest; 1 s samples."""
    seg = []
    for _ in range(8):
        for a in (1.0, 2.0, 4.0):
            seg += [(a, 10), (0.0, 40), (-0.75 * a, 10), (0.0, 40)]
        seg += [(2.0, 360), (0.0, 1200)]
    current = np.concatenate([[0.0]] + [np.full(n, a) for a, n in seg])
    t = np.arange(current.size, dtype=float)
    return CellTest("pulses", t, current, np.zeros_like(t), np.full(t.size, 298.15), initial_soc=1.0)


def test_fit_recovers_diffusion_and_kinetics():
    """Known OCV given, 1 RC pair + lag + Butler-Volmer: tau, tau_d, lag_1C and I_s within
    1 %, the R tables within 2 %, voltage within 0.5 mV RMS."""
    test = pulse_test()
    test.voltage = simulate_ecm(TRUE, test)
    res = fit_ecm([test], FitOptions(n_rc=1, capacity=2.0, soc_nodes=[0.0, 1.0], ocv=OCV,
                                     diffusion=True, diffusion_start=(300.0, 0.01),
                                     kinetics=True, kinetics_start=1.0,
                                     tau_bounds=[(3.0, 300.0)], tau_start=[10.0], smoothing=0.0))
    cell = res.cell
    assert res.rms["pulses"] < 5e-4
    assert cell["rc_pairs"][0]["tau"] == pytest.approx(30.0, rel=0.01)
    assert cell["diffusion"]["tau"] == pytest.approx(900.0, rel=0.01)
    assert cell["diffusion"]["lag_1C"] == pytest.approx(0.03, rel=0.01)
    assert cell["kinetics"]["current_scale"] == pytest.approx(3.0, rel=0.01)
    for got, want in ((cell["R0"], TRUE["R0"]), (cell["kinetics"]["R"], TRUE["kinetics"]["R"]),
                      (cell["rc_pairs"][0]["R"], TRUE["rc_pairs"][0]["R"])):
        np.testing.assert_allclose(np.asarray(got)[:, 1], np.asarray(want)[:, 1], rtol=0.02)


def test_fit_ecm_cli_writes_the_extensions_and_checks_their_flags(tmp_path, capsys):
    """`fit-ecm DATA --diffusion --kinetics` writes a cell file with both blocks that loads as
    a preset; --electrode-ocv / --pulse-rates / --cc-rates without --pybamm exit 2 naming the flag."""
    import yaml

    from busbarfem.case.cells import CellModel
    from busbarfem.cli import main

    test = pulse_test()
    test.voltage = simulate_ecm(TRUE, test)
    csv = tmp_path / "pulses.csv"
    test.write_csv(csv)
    out = tmp_path / "cell.yaml"
    assert main(["fit-ecm", str(csv), "-o", str(out), "--n-rc", "1", "--capacity", "2.0",
                 "--diffusion", "--kinetics", "-q"]) == 0
    cell = yaml.safe_load(out.read_text())["cell"]
    assert {"diffusion", "kinetics"} <= set(cell)
    model = CellModel(preset=str(out))
    assert model.diffusion is not None and model.kinetics is not None
    for i, flag in enumerate((["--electrode-ocv"], ["--pulse-rates", "1,2"], ["--cc-rates", "1"])):
        assert main(["fit-ecm", str(csv), "-o", str(tmp_path / f"x{i}.yaml"), *flag]) == 2
        assert "--pybamm" in capsys.readouterr().err


def cc_test(name="cc", amps=4.0):
    """Constant-current discharge from SOC 1 at ``amps`` for 1600 s, 10 s samples."""
    t = np.arange(0.0, 1601.0, 10.0)
    current = np.where(t > 0.0, amps, 0.0)
    return CellTest(name, t, current, np.zeros_like(t), np.full(t.size, 298.15), initial_soc=1.0)


def test_fit_weights_equal_repeated_tests_and_pull_the_fit_to_the_weighted_test():
    """FitOptions.weights multiplies a test's squared residuals: weight 3 on a CC discharge
    gives the fit of the data with that discharge three times (no smoothing penalty: the
    same least-squares problem; tables and tau to 1e-6), and a model that cannot fit both
    tests (1 RC pair, no lag or kinetics, for data with both) moves its error from the
    weighted discharge to the pulses."""
    pulses, cc = pulse_test(), cc_test()
    for t in (pulses, cc):
        t.voltage = simulate_ecm(TRUE, t)
    copies = [cc_test(f"cc{i}") for i in range(3)]
    for t in copies:
        t.voltage = cc.voltage.copy()
    opts = dict(n_rc=1, capacity=2.0, soc_nodes=[0.0, 0.5, 1.0], ocv=OCV, smoothing=0.0,
                tau_bounds=[(3.0, 3000.0)], tau_start=[30.0])
    w3 = fit_ecm([pulses, cc], FitOptions(weights={"cc": 3.0}, **opts))
    rep = fit_ecm([pulses, *copies], FitOptions(**opts))
    assert w3.nonlinear["tau"][0] == pytest.approx(rep.nonlinear["tau"][0], rel=1e-6)
    for key in ("R0",):
        np.testing.assert_allclose(np.asarray(w3.cell[key])[:, 1], np.asarray(rep.cell[key])[:, 1], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(w3.cell["rc_pairs"][0]["R"])[:, 1],
                               np.asarray(rep.cell["rc_pairs"][0]["R"])[:, 1], rtol=1e-5)
    plain = fit_ecm([pulses, cc], FitOptions(**opts))
    heavy = fit_ecm([pulses, cc], FitOptions(weights={"cc": 100.0}, **opts))
    assert plain.rms["cc"] > 1e-3  # the reduced model does not fit the discharge exactly
    assert heavy.rms["cc"] < 0.7 * plain.rms["cc"]
    assert heavy.rms["pulses"] > plain.rms["pulses"]
    with pytest.raises(ValueError, match="no test named"):
        fit_ecm([pulses], FitOptions(weights={"cc": 2.0}, **opts))
