"""Contact layers (issue 16): derived material, tables, located errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from busbarfem.case.geometry import Contact, Geometry, MeshOptions
from busbarfem.errors import CaseError
from busbarfem.geometry import generate_model
from busbarfem.geometry.contact import contact_materials, cylinder_layer_thickness
from busbarfem.materials import LIBRARY

BARS = [{"path": [[0, 0], [0.05, 0]], "width": 0.01, "thickness": 0.002},
        {"path": [[0.05, 0], [0.1, 0]], "width": 0.01, "thickness": 0.002, "material": "aluminium"}]


def _g(contact, busbars=BARS, **kw) -> Geometry:
    return Geometry.model_validate({"busbars": busbars, "contacts": [contact],
                                    "terminals": {"positive": "busbar_1.start", "negative": "busbar_2.end"}, **kw})


def test_layer_material_adds_exactly_r_c_and_one_over_h_c():
    t = 1e-4
    g = _g({"between": ["busbar_1", "busbar_2"], "r_c": 2e-9, "h_c": 1e4, "thickness": t})
    m = contact_materials(g, LIBRARY)["contact.busbar_1.busbar_2"]
    al = LIBRARY["aluminium"]  # carved out of the second region
    assert t / m.sigma_ref == pytest.approx(2e-9 + t / al.sigma_ref, rel=1e-12)
    assert t / m.k == pytest.approx(1 / 1e4 + t / al.k, rel=1e-12)
    # alpha: the host's share of the resistivity keeps its own temperature coefficient
    assert m.alpha * (t / m.sigma_ref) == pytest.approx(al.alpha * t / al.sigma_ref, rel=1e-9)


def test_states_and_temperature_table():
    c = Contact.model_validate({"between": ["a_1", "b_1"], "states": {"torqued": {"r_c": 1e-9, "h_c": 3e4},
                                                                     "loose": {"r_c": 1e-7, "h_c": 2e3}},
                                "state": "loose"})
    assert c.values() == (1e-7, 2e3)
    c = Contact.model_validate({"between": ["a_1", "b_1"], "h_c": 1e4,
                                "r_c_vs_T": [[300, 1.0e-9], [350, 1.2e-9], [400, 1.4e-9]]})
    r0, alpha, T_ref = c.linear_r_c()
    assert (r0, T_ref) == (pytest.approx(1e-9), 300)
    assert alpha == pytest.approx(0.004, rel=1e-9)
    # a temperature table per clamping state
    c = Contact.model_validate({"between": ["a_1", "b_1"], "state": "loose", "states": {
        "torqued": {"r_c": 1e-9, "h_c": 3e4},
        "loose": {"h_c": 2e3, "r_c_vs_T": [[300, 1.0e-8], [400, 2.0e-8]]}}})
    assert c.linear_r_c() == (pytest.approx(1e-8), pytest.approx(0.01), 300)
    assert c.model_copy(update={"state": "torqued"}).linear_r_c() == (1e-9, 0.0, 293.15)


@pytest.mark.parametrize("contact, match", [
    ({"between": ["busbar_1", "busbar_1"], "r_c": 1e-9, "h_c": 1e4}, "two different regions"),
    ({"between": ["busbar_1", "busbar_2"], "r_c": 1e-9}, "give r_c"),
    ({"between": ["busbar_1", "busbar_2"], "states": {"a": {"r_c": 1e-9, "h_c": 1}}, "state": "b"},
     "not one of the states"),
    ({"between": ["busbar_1", "busbar_2"], "h_c": 1e4, "r_c_vs_T": [[300, 1e-9], [350, 4e-9], [400, 1.1e-9]]},
     "straight line"),
    ({"between": ["busbar_1", "busbar_2"], "r_c": -1e-9, "h_c": 1e4}, "greater than 0"),
    ({"between": ["busbar_1", "busbar_2"], "states": {"a": {"h_c": 1e4}}, "state": "a"}, "give r_c or r_c_vs_T"),
    ({"between": ["busbar_1", "busbar_2"], "r_c": 1e-9, "states": {"a": {"r_c": 1e-9, "h_c": 1e4}}, "state": "a"},
     "inside each state"),
    ({"between": ["busbar_1", "busbar_2"], "states": {"a": {"h_c": 1e4, "r_c_vs_T": [[300, 1e-9], [350, 4e-9],
                                                                                    [400, 1.1e-9]]}},
      "state": "a"}, "straight line"),
])
def test_bad_contact_is_a_validation_error(contact, match):
    with pytest.raises(ValidationError, match=match):
        _g(contact)


@pytest.mark.parametrize("busbars, bolts, between, match, key", [
    ([BARS[0], {**BARS[1], "path": [[0.06, 0], [0.1, 0]]}], [], ["busbar_1", "busbar_2"], "share no face",
     "geometry.contacts.0"),
    (BARS, [], ["busbar_1", "bolt_7"], "no region 'bolt_7'", "geometry.contacts.0.between.1"),
])
def test_contact_geometry_errors_are_located(gmsh_session, busbars, bolts, between, match, key):
    g = Geometry.model_validate({"busbars": busbars, "bolts": bolts,
                                 "contacts": [{"between": between, "r_c": 1e-9, "h_c": 1e4}],
                                 "terminals": {"positive": "busbar_1.start", "negative": "busbar_1.end"}})
    with pytest.raises(CaseError, match=match) as exc:
        generate_model(g, MeshOptions(size=0.004))
    assert exc.value.key == key


@pytest.mark.parametrize("between, outside, height", [(["busbar_1", "bolt_1"], False, 0.0),
                                                     (["bolt_1", "busbar_1"], True, 0.003)])
def test_layer_on_a_bolt_shank_lines_the_bore(gmsh_session, between, outside, height):
    """A bolt through a 2 mm plate: the layer is a tube on the shank's cylindrical face, inside a
    flush bolt (carved from it) or outside a protruding one (carved from the plate), with the planar
    layer's resistance."""
    import math

    r, t, th = 0.002, 1e-4, 0.002
    g = Geometry.model_validate({"busbars": BARS[:1], "bolts": [{"center": [0.02, 0], "radius": r, "height": height}],
                                 "contacts": [{"between": between, "r_c": 1e-9, "h_c": 1e4, "thickness": t}],
                                 "terminals": {"positive": "busbar_1.start", "negative": "busbar_1.end"}})
    info = generate_model(g, MeshOptions(size=0.004))
    name = f"contact.{between[0]}.{between[1]}"
    assert info.parameters["builders"]["contacts"][name]["area_m2"] == pytest.approx(2 * math.pi * r * th, rel=1e-9)
    tc = cylinder_layer_thickness(r, t, outside)
    r_in, r_out = (r, r + tc) if outside else (r - tc, r)
    assert r * math.log(r_out / r_in) == pytest.approx(t, rel=1e-12)
    assert info.volumes[name] == pytest.approx(math.pi * (r_out**2 - r_in**2) * th, rel=1e-9)
    from busbarfem.geometry.inspect import mesh_measure

    assert mesh_measure(name) == pytest.approx(info.volumes[name], rel=2e-2)


def test_layer_carved_into_a_protruding_shank_is_refused(gmsh_session):
    """Carved out of a shank that runs on past the bore, the layer would be bypassed at the rim."""
    g = Geometry.model_validate({"busbars": BARS[:1], "bolts": [{"center": [0.02, 0], "radius": 0.002, "height": 0.003}],
                                 "contacts": [{"between": ["busbar_1", "bolt_1"], "r_c": 1e-9, "h_c": 1e4}],
                                 "terminals": {"positive": "busbar_1.start", "negative": "busbar_1.end"}})
    with pytest.raises(CaseError, match=r"between: \[bolt_1, busbar_1\]") as exc:
        generate_model(g, MeshOptions(size=0.004))
    assert exc.value.key == "geometry.contacts.0.between"
