"""Contact resistance on an interface between two solids (issue 16).

Two copper bars 50 x 10 x 2 mm butt-joined at x = 50 mm with a specific contact
resistance r_c and thermal contact conductance h_c on the joint (geometry.contacts):

* R = L / (sigma A) + r_c / A (0.5 %; the layer model makes it exact up to discretisation),
  independent of the modelling layer's thickness;
* the Joule heat of the layer is I^2 (r_c + t rho) / A: the contact's I^2 r_c / A plus the
  bulk share of the slab it replaced (within 0.5 % of I^2 r_c / A itself);
* with a heat flux q into one end and the other end held at T_0 (no other cooling), the
  end temperature is T_0 + q (L / k + 1 / h_c);
* serial and ``mpirun -n 2`` agree to 1e-6;
* on a cylindrical interface (a pin in a sleeve, radial current) R = ln(r_o/r_i) / (2 pi sigma L)
  + r_c / (2 pi r_i L) (0.5 %), and the layer heat is I^2 (r_c + t rho) / A with A = 2 pi r_i L.
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


# --------------------------------------------------------------------------- cylindrical interface
# A copper sleeve (r_i..r_o, length Lc) on a pin, with the contact on the pin/sleeve bore. Pin and an
# outer jacket conduct 1e4 x better than copper, so the bore and the sleeve's outside are nearly
# equipotential and the current in the sleeve is radial: R = ln(r_o/r_i) / (2 pi sigma Lc)
# + r_c / (2 pi r_i Lc) (+ the small axial drops in pin and jacket, included below).
RI, RO, RJ, LC, E = 0.004, 0.008, 0.010, 0.010, 0.002
R_C_CYL, SUPER = 5.0e-11, 1.0e4


def _coax_step(path: Path) -> None:
    import gmsh

    gmsh.initialize()
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("coax")
        occ = gmsh.model.occ
        occ.addCylinder(0, 0, 0, 0, 0, LC + E, RI)  # pin, out of the top
        sleeve = occ.addCylinder(0, 0, 0, 0, 0, LC, RO)
        occ.cut([(3, sleeve)], [(3, occ.addCylinder(0, 0, 0, 0, 0, LC, RI))])
        jacket = occ.addCylinder(0, 0, -E, 0, 0, LC + E, RJ)  # jacket, out of the bottom
        occ.cut([(3, jacket)], [(3, occ.addCylinder(0, 0, -E, 0, 0, LC + E, RO))])
        occ.synchronize()
        gmsh.write(str(path))
    finally:
        gmsh.finalize()


def coax_case(step: str, extra: str = "") -> str:
    e = 1e-6
    return f"""name: coax
allow_external_paths: true
geometry:
  step:
    file: {step}
    unit: m
    rules:
      - {{match: {{bbox: [{-RI - e}, {-RI - e}, {-e}, {RI + e}, {RI + e}, {LC + E + e}]}}, region: pin, material: super}}
      - {{match: {{bbox: [{-RO - e}, {-RO - e}, {-e}, {RO + e}, {RO + e}, {LC + e}]}}, region: sleeve, material: cu0}}
      - {{match: {{name: "."}}, region: jacket, material: super}}
    terminals:
      positive: {{bbox: [{-RI - e}, {-RI - e}, {LC + E - e}, {RI + e}, {RI + e}, {LC + E + e}]}}
      negative: {{bbox: [{-RJ - e}, {-RJ - e}, {-E - e}, {RJ + e}, {RJ + e}, {-E + e}]}}
  contacts:
    - {{between: [pin, sleeve], r_c: {R_C_CYL}, h_c: {H_C}{extra}}}
materials:
  cu0: {{sigma_ref: {SIGMA}, alpha: 0.0, k: {K}, rho: 8933.0, cp: 385.0}}
  super: {{sigma_ref: {SIGMA * SUPER}, alpha: 0.0, k: {K}, rho: 8933.0, cp: 385.0}}
mesh:
  size: 0.002
  order: 2
load:
  electrical_input_type: current
  current: {I}
thermal:
  initial_temperature: 300.0
  ambient_temperature: 300.0
  boundaries:
{COOLED}
solver:
  analysis: steady
"""


def test_contact_on_a_cylindrical_bore(tmp_path):
    import math

    _coax_step(tmp_path / "coax.step")
    s = run(tmp_path, coax_case(str(tmp_path / "coax.step")))
    area = 2 * math.pi * RI * LC
    R_bulk = math.log(RO / RI) / (2 * math.pi * SIGMA * LC)
    s_super = SIGMA * SUPER  # axial drops: protrusions, plus 1/3 of the uniformly leaking length
    R_axial = (E + LC / 3) / (s_super * math.pi * RI**2) + (E + LC / 3) / (s_super * math.pi * (RJ**2 - RO**2))
    R_exp = R_bulk + R_C_CYL / area + R_axial
    R = s["terminal"]["resistance_ohm"]
    q_layer = s["joule_power_W"]["by_region"]["contact.pin.sleeve"]
    print(f"coaxial bore: R = {R * 1e6:.5f} uOhm, expected {R_exp * 1e6:.5f} ({R / R_exp - 1:+.3%}; bulk "
          f"{R_bulk * 1e6:.5f}, contact {R_C_CYL / area * 1e6:.5f}, axial {R_axial * 1e6:.5f}); layer heat "
          f"{q_layer:.6f} W vs I^2 r_c/A {I**2 * R_C_CYL / area:.6f} W")
    assert R == pytest.approx(R_exp, rel=0.005)
    assert q_layer == pytest.approx(I**2 * (R_C_CYL + 1e-4 / SIGMA) / area, rel=0.005)
    # without the contact the same mesh gives the bulk value: the difference is r_c / A
    free = run(tmp_path, coax_case(str(tmp_path / "coax.step")).replace(
        f"r_c: {R_C_CYL}", "r_c: 1.0e-20"))
    dR = R - free["terminal"]["resistance_ohm"]
    print(f"R - R(r_c -> 0) = {dR * 1e6:.5f} uOhm vs r_c/A = {R_C_CYL / area * 1e6:.5f} ({dR * area / R_C_CYL - 1:+.3%})")
    assert dR == pytest.approx(R_C_CYL / area, rel=0.005)


@pytest.mark.parametrize("spec, r_350", [
    ("      r_c_vs_T: [[300.0, 1.0e-9], [350.0, 1.5e-9], [400.0, 2.0e-9]]\n      h_c: 20000.0\n", 1.5e-9),
    ("      states:\n        torqued: {r_c: 1.0e-9, h_c: 20000.0}\n"
     "        loose: {h_c: 2000.0, r_c_vs_T: [[300.0, 2.0e-9], [400.0, 4.0e-9]]}\n      state: loose\n", 3.0e-9),
], ids=["table", "clamp_state_table"])
def test_contact_resistance_follows_its_temperature_table(tmp_path, spec, r_350):
    """r_c from a table (of the contact, or of the selected clamping state), body held at 350 K
    by a temperature condition on the whole exterior: R = R_bulk + r_c(350 K) / A (the solver's
    sigma(T) iteration carries the table's slope)."""
    text = case("    - {type: temperature, regions: [exterior], T: 350.0}", current=10.0)
    s = run(tmp_path, text.replace("      r_c: 1e-09\n      h_c: 20000.0\n", spec))
    R = s["terminal"]["resistance_ohm"]
    R_exp = L / (SIGMA * A) + r_350 / A
    print(f"r_c(T) at 350 K: R = {R * 1e6:.5f} uOhm, expected {R_exp * 1e6:.5f} ({R / R_exp - 1:+.2e})")
    assert R == pytest.approx(R_exp, rel=1e-3)
    assert R - L / (SIGMA * A) == pytest.approx(r_350 / A, rel=2e-3)  # not r_c(300 K)
