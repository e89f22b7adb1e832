"""Cold-plate geometry: named regions, wall areas, and located errors for channels that do not fit."""

from __future__ import annotations

import math

import pytest
from mpi4py import MPI

import ufl
from dolfinx import fem

from busbarfem.errors import CaseError
from busbarfem.geometry.coldplate import ChannelPath, ColdPlateSpec, mesh_cold_plate, serpentine_points


def areas(bundle) -> dict[str, float]:
    """Area of every named surface of the mesh [m^2]."""
    ds = ufl.Measure("ds", domain=bundle.mesh, subdomain_data=bundle.facet_tags)
    return {n: fem.assemble_scalar(fem.form(1.0 * ds(bundle.tags[n]))) for n in bundle.surface_names()}


def test_two_channels_regions_and_wall_areas():
    """A closed-end rectangular channel and an open round one: regions named, rectangular wall area
    = perimeter x length + end caps (1e-9), round wall within 2 % of pi D L (faceting), top = footprint."""
    w, h, z = 0.004, 0.002, 0.003
    spec = ColdPlateSpec("cp", "aluminium", (0.0, 0.0, 0.0), (0.05, 0.03), 0.006, [
        ChannelPath("r", [(0.01, 0.008, z), (0.04, 0.008, z)], "rectangular", width=w, height=h),
        ChannelPath("c", [(0.0, 0.022, z), (0.05, 0.022, z)], "circular", diameter=0.003)])
    bundle = mesh_cold_plate(spec, MPI.COMM_SELF, 0.004, 0.0008)
    a = areas(bundle)
    assert set(a) == {"cp_r_wall", "cp_c_wall", "cp_top", "cp_bottom"}
    assert a["cp_r_wall"] == pytest.approx(2 * (w + h) * 0.03 + 2 * w * h, rel=1e-9)
    assert a["cp_c_wall"] == pytest.approx(math.pi * 0.003 * 0.05, rel=0.02)
    assert a["cp_top"] == pytest.approx(0.05 * 0.03, rel=1e-9)
    ports = bundle.info.parameters["cold_plates"]["cp"]["channels"]["c"]
    assert ports["inlet"] == [0.0, 0.022, z] and ports["outlet"] == [0.05, 0.022, z]


def test_serpentine_points():
    """Three passes: runs alternate direction, U-turns step by the pitch."""
    pts = serpentine_points((0.0, 0.01, 0.0), 0.09, 0.015, 3)
    assert pts == [(0.0, 0.01, 0.0), (0.09, 0.01, 0.0), (0.09, 0.025, 0.0), (0.0, 0.025, 0.0),
                   (0.0, 0.04, 0.0), (0.09, 0.04, 0.0)]


@pytest.mark.parametrize("points, words", [
    ([(0.0, 0.01, 0.0055), (0.05, 0.01, 0.0055)], "breaks through the top or bottom"),
    ([(0.0, 0.01, 0.003), (0.07, 0.01, 0.003)], "leaves the plate footprint"),
    ([(0.0, 0.01, 0.003), (0.0, 0.01, 0.003)], "distinct"),
])
def test_channels_that_do_not_fit_are_located_errors(points, words):
    """A channel outside the plate is a CaseError naming plate, channel and key."""
    spec = ColdPlateSpec("cp", "aluminium", (0.0, 0.0, 0.0), (0.05, 0.03), 0.006,
                         [ChannelPath("c", points, "circular", diameter=0.003)])
    with pytest.raises(CaseError) as e:
        mesh_cold_plate(spec, MPI.COMM_SELF, 0.004)
    assert words in str(e.value) and "channels.0.path" in str(e.value)
