"""The ``cooling:`` section: schema, located errors, and conversion to the plate and circuit objects."""

from __future__ import annotations

import typing

import pytest

from busbarfem.case.cooling import CoolantName
from busbarfem.case.loader import load_case
from busbarfem.cli import main
from busbarfem.geometry.coldplate import plates_from_case
from busbarfem.physics.coolant import COOLANTS
from busbarfem.physics.cooling import InterfaceConductance, circuits_from_case

BASE = """name: cooled
geometry:
  busbars:
    - path: [[0.0, 0.0], [0.1, 0.0]]
      width: 0.010
      thickness: 0.002
      material: copper
  terminals:
    positive: busbar_1.start
    negative: busbar_1.end
load:
  current: 100.0
"""

COOLING = """cooling:
  plates:
    - name: plate
      material: aluminium
      origin: [0.0, 0.0, -0.01]
      size: [0.1, 0.05]
      thickness: 0.008
      channels:
        - name: s1
          shape: rectangular
          width: 0.006
          height: 0.003
          bend_loss: 1.5
          segments_per_run: 3
          serpentine: {start: [0.0, 0.01, -0.006], run_length: 0.09, pitch: 0.015, passes: 3}
        - name: c2
          diameter: 0.004
          path: [[0.0, 0.045, -0.006], [0.1, 0.045, -0.006]]
  circuits:
    - name: loop
      coolant: ethylene_glycol_50
      plate: plate
      channels: [s1, c2]
      inlet: {temperature: 298.15, volume_flow: [[0, 1.0e-5], [600, 2.0e-5]]}
  interfaces:
    - {name: pad, plate: plate, thickness: 0.001, conductivity: 3.0}
"""


def write(tmp_path, text: str):
    """A case file with BASE and the given cooling text."""
    path = tmp_path / "case.yaml"
    path.write_text(BASE + text, encoding="utf-8")
    return path


def test_coolant_names_in_the_schema_are_the_library():
    """The schema's coolant choices are exactly the coolant library."""
    assert set(typing.get_args(CoolantName)) == set(COOLANTS)


def test_cooling_section_loads_and_converts(tmp_path):
    """Plates, channels (serpentine points, segments), the manifold circuit and the pad convert."""
    case, _ = load_case(write(tmp_path, COOLING))
    plates = plates_from_case(case.cooling)
    assert [c.name for c in plates[0].channels] == ["s1", "c2"]
    assert plates[0].channels[0].points[:3] == [(0.0, 0.01, -0.006), (0.09, 0.01, -0.006), (0.09, 0.025, -0.006)]
    (circuit,) = circuits_from_case(case.cooling)
    assert circuit.walls == ["plate_s1_wall", "plate_c2_wall"]
    s1 = circuit.channels[0]
    assert len(s1.segments) == 5 * 3  # five runs of the serpentine, three segments each
    assert sum(seg.loss_coefficient for seg in s1.segments) == pytest.approx(4 * 1.5)  # two U-turns
    assert s1.length == pytest.approx(3 * 0.09 + 2 * 0.015)
    m, T = circuit.inlet.at(300.0, circuit.coolant)
    assert m == pytest.approx(1.5e-5 * COOLANTS["ethylene_glycol_50"].rho(298.15), rel=1e-12) and T == 298.15
    pad = InterfaceConductance.from_case(case.cooling.interfaces[0])
    assert pad.conductance == pytest.approx(3000.0) and pad.conductivity == pytest.approx(3.0)


@pytest.mark.parametrize("old, new, key, words", [
    ("volume_flow: [[0, 1.0e-5], [600, 2.0e-5]]", "volume_flow: -1.0e-5", "cooling.circuits.0.inlet", "> 0"),
    ("coolant: ethylene_glycol_50", "coolant: glycol", "cooling.circuits.0.coolant", "ethylene_glycol_50"),
    ("channels: [s1, c2]", "channels: [s1, c3]", "cooling.circuits.0.channels.1", "'c3' is not a channel"),
    ("plate: plate\n      channels", "plate: plates\n      channels", "cooling.circuits.0.plate", "not a plate"),
    ("temperature: 298.15, volume_flow", "temperature: 298.15, mass_flow: 0.01, volume_flow", "cooling.circuits.0.inlet",
     "exactly one of mass_flow"),
    ("coolant: ethylene_glycol_50", "coolant: water", "cooling.circuits.0.inlet.temperature", None),
    ("material: aluminium", "material: alumnium", "cooling.plates.0.material", "did you mean 'aluminium'"),
    ("diameter: 0.004", "width: 0.004", "cooling.plates.0.channels.1", "needs diameter"),
    ("{name: pad, plate: plate, thickness: 0.001, conductivity: 3.0}", "{name: pad, plate: plate, thickness: 0.001}",
     "cooling.interfaces.0", "thickness and conductivity, or conductance"),
])
def test_bad_cooling_values_are_located_errors(tmp_path, capsys, old, new, key, words):
    """Exit code 2, one message with file:line and the key, no traceback."""
    text = COOLING.replace(old, new)
    if key.endswith("inlet.temperature"):
        text = text.replace("temperature: 298.15", "temperature: 380.0")
    assert text != COOLING
    path = write(tmp_path, text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{path}:" in err and key in err, err
    if words:
        assert words in err, err
    if key.endswith("inlet.temperature"):
        assert "275-370 K" in err


def test_valid_cooling_validates_and_its_regions_are_known(tmp_path, capsys):
    """The section is solved by run: validate accepts it (exit 0), and a thermal boundary on the
    plate's bottom face (a region the plate adds) is valid; a misspelt one lists the plate's names."""
    assert main(["validate", str(write(tmp_path, COOLING))]) == 0
    bc = "thermal:\n  boundaries:\n    - {type: convection, regions: [%s], h: 5.0}\n"
    assert main(["validate", str(write(tmp_path, COOLING + bc % "plate_bottom"))]) == 0
    capsys.readouterr()
    assert main(["validate", str(write(tmp_path, COOLING + bc % "plate_botom"))]) == 2
    err = capsys.readouterr().err
    assert "plate_botom" in err and "plate_bottom" in err and "plate_s1_wall" in err


def test_lumped_refuses_cooling(tmp_path, capsys):
    """--lumped would ignore the plate: it refuses the section (exit 2, naming the key)."""
    from pathlib import Path

    case = Path(__file__).resolve().parents[2] / "examples" / "module_4s2p_cold_plate.yaml"
    assert main(["run", str(case), "--lumped", "-o", str(tmp_path / "out"), "-q", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "cooling" in err and "--lumped" in err


def test_cold_plate_with_an_external_mesh_is_refused(tmp_path):
    """A plate cannot be added to geometry.mesh_file: a located error at cooling.plates."""
    from busbarfem.errors import CaseError

    (tmp_path / "m.msh").write_text("")
    text = BASE.replace("""  busbars:
    - path: [[0.0, 0.0], [0.1, 0.0]]
      width: 0.010
      thickness: 0.002
      material: copper
  terminals:
    positive: busbar_1.start
    negative: busbar_1.end
""", "  mesh_file:\n    file: m.msh\n    regions: {bar: {material: copper}}\n")
    path = tmp_path / "case.yaml"
    path.write_text(text + COOLING, encoding="utf-8")
    with pytest.raises(CaseError, match="mesh_file") as err:
        load_case(path)
    assert err.value.key == "cooling.plates" and err.value.line is not None
