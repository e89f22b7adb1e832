"""Contact resistance on an interface between two solids (issue 16).

Two copper bars 50 x 10 x 2 mm butt-joined at x = 50 mm with a specific contact
resistance r_c and thermal contact conductance h_c on the joint (geometry.contacts):

* R = L / (sigma A) + r_c / A (0.5 %; the layer model makes it exact up to discretisation),
  independent of the modelling layer's thickness;
* the Joule heat of the layer is I^2 (r_c + t rho) / A: the contact's I^2 r_c / A plus the
  bulk share of the slab it replaced (within 0.5 % of I^2 r_c / A itself);
* with a heat flux q into one end and the other end held at T_0 (no other cooling), the
  end temperature is T_0 + q (L / k + 1 / h_c);
* serial and ``mpirun -n 2`` agree to 1e-6.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIGMA, K, L, W, TH = 5.8e7, 398.0, 0.1, 0.01, 0.002
A = W * TH
R_C, H_C, I = 1.0e-9, 2.0e4, 100.0


def case(thermal: str, current: float = I, extra: str = "") -> str:
    return f"""name: two_bars
geometry:
  busbars:
    - {{path: [[0.0, 0.0], [0.05, 0.0]], width: {W}, thickness: {TH}, material: cu0}}
    - {{path: [[0.05, 0.0], [0.1, 0.0]], width: {W}, thickness: {TH}, material: cu0}}
  contacts:
    - between: [busbar_1, busbar_2]
      r_c: {R_C}
      h_c: {H_C}
{extra}  terminals:
    positive: busbar_1.start
    negative: busbar_2.end
materials:
  cu0: {{sigma_ref: {SIGMA}, alpha: 0.0, k: {K}, rho: 8933.0, cp: 385.0}}
mesh:
  size: 0.004
load:
  electrical_input_type: current
  current: {current}
thermal:
  initial_temperature: 300.0
  ambient_temperature: 300.0
  boundaries:
{thermal}
solver:
  analysis: steady
"""


COOLED = "    - {type: convection, regions: [exterior], h: 10.0}"


def run(tmp_path, text: str, nproc: int = 1) -> dict:
    d = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
    d.mkdir()
    (d / "case.yaml").write_text(text)
    cmd = [sys.executable, "-m", "busbarfem", "run", str(d / "case.yaml"), "-o", str(d / "out"), "-q",
           "--no-report", "--no-cache"]
    if nproc > 1:
        cmd = [str(Path(sys.executable).parent / "mpirun"), "-n", str(nproc), *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((d / "out" / "summary.json").read_text())


NAME = "contact.busbar_1.busbar_2"


def test_resistance_and_contact_heat(tmp_path):
    s = run(tmp_path, case(COOLED))
    R_exp = L / (SIGMA * A) + R_C / A
    R = s["terminal"]["resistance_ohm"]
    q_layer = s["joule_power_W"]["by_region"][NAME]
    print(f"R = {R * 1e6:.5f} uOhm (expected {R_exp * 1e6:.5f}); contact heat {q_layer:.6f} W "
          f"(I^2 r_c / A = {I**2 * R_C / A:.6f} W)")
    assert R == pytest.approx(R_exp, rel=0.005)
    assert q_layer == pytest.approx(I**2 * (R_C + 1e-4 / SIGMA) / A, rel=1e-3)
    assert q_layer == pytest.approx(I**2 * R_C / A, rel=0.005)
    # the modelling layer's thickness does not matter
    thin = run(tmp_path, case(COOLED).replace("      h_c: 20000.0\n", "      h_c: 20000.0\n      thickness: 2.5e-5\n"))
    assert thin["terminal"]["resistance_ohm"] == pytest.approx(R, rel=1e-6)


def test_thermal_contact_conductance(tmp_path):
    q, T0 = 5.0e4, 300.0  # W/m^2 into busbar_1.start; busbar_2.end held at T0
    bcs = (f"    - {{type: heat_flux, regions: [terminal_pos], flux: {q}}}\n"
           f"    - {{type: temperature, regions: [terminal_neg], T: {T0}}}")
    s = run(tmp_path, case(bcs, current=1.0e-3))
    expected = T0 + q * (L / K + 1 / H_C)
    print(f"T_max = {s['T_max']['value']:.4f} K, expected {expected:.4f} K")
    assert s["T_max"]["value"] - T0 == pytest.approx(expected - T0, rel=0.005)
    assert expected - T0 - q * L / K > 2.0  # the contact's own drop is visible


@pytest.mark.mpi
def test_serial_and_two_ranks_agree(tmp_path):
    a, b = run(tmp_path, case(COOLED)), run(tmp_path, case(COOLED), nproc=2)
    assert b["mpi_size"] == 2
    for get in (lambda s: s["terminal"]["resistance_ohm"], lambda s: s["joule_power_W"]["by_region"][NAME],
                lambda s: s["T_max"]["value"]):
        assert get(b) == pytest.approx(get(a), rel=1e-6)
