"""Named material library: electrical sigma(T) and thermal properties, with sources.

``sigma(T) = sigma_ref / (1 + alpha (T - T_ref))`` [S/m]; ``k`` [W/m/K] (scalar, or three
principal values along x, y, z for anisotropic solids), ``rho`` [kg/m^3], ``cp`` [J/kg/K].
Case files may add materials or override these by name in their ``materials:`` section.
"""

from __future__ import annotations

from busbarfem.case.model import Material

#: Built-in materials. Values at 20 C unless noted.
LIBRARY: dict[str, Material] = {
    # IACS annealed copper: 5.80e7 S/m at 20 C, alpha 0.00393 /K (IEC 60028);
    # k, rho, cp: Incropera & DeWitt, Fundamentals of Heat and Mass Transfer, Table A.1.
    "copper": Material(sigma_ref=5.80e7, alpha=0.00393, T_ref=293.15, k=398.0, rho=8933.0, cp=385.0,
                       source="IEC 60028 (IACS); Incropera Table A.1"),
    # EC-grade aluminium 1350: 61 % IACS = 3.54e7 S/m, alpha 0.00403 /K (ASTM B233);
    # thermal: Incropera Table A.1 (pure Al).
    "aluminium": Material(sigma_ref=3.54e7, alpha=0.00403, T_ref=293.15, k=237.0, rho=2702.0, cp=903.0,
                          source="ASTM B233 (1350); Incropera Table A.1"),
    # Nickel 200 (tab material): 1.43e7 S/m, alpha 0.0068 /K; Special Metals data sheet;
    # thermal: Incropera Table A.1.
    "nickel": Material(sigma_ref=1.43e7, alpha=0.0068, T_ref=293.15, k=90.7, rho=8900.0, cp=444.0,
                       source="Special Metals Nickel 200 data sheet; Incropera Table A.1"),
    # Stainless steel AISI 304 (bolts): 1.39e6 S/m, alpha ~0.001 /K; Incropera Table A.1.
    "steel": Material(sigma_ref=1.39e6, alpha=0.001, T_ref=293.15, k=14.9, rho=7900.0, cp=477.0,
                      source="ASM Handbook vol. 1 (AISI 304); Incropera Table A.1"),
    # Titanium grade 2: 2.38e6 S/m, alpha 0.0038 /K; thermal: Incropera Table A.1.
    "titanium": Material(sigma_ref=2.38e6, alpha=0.0038, T_ref=293.15, k=21.9, rho=4500.0, cp=522.0,
                         source="ASM Handbook vol. 2; Incropera Table A.1"),
    # Cartridge brass C26000: 28 % IACS = 1.62e7 S/m, alpha 0.0015 /K; Incropera Table A.1.
    "brass": Material(sigma_ref=1.62e7, alpha=0.0015, T_ref=293.15, k=110.0, rho=8530.0, cp=380.0,
                      source="CDA C26000 data sheet; Incropera Table A.1"),
    # Hilumin (nickel-plated steel can/tab): ~ low-carbon steel 6.99e6 S/m, alpha 0.005 /K;
    # thermal: Incropera Table A.1 (plain carbon steel).
    "nickel_plated_steel": Material(sigma_ref=6.99e6, alpha=0.005, T_ref=293.15, k=60.5, rho=7854.0,
                                    cp=434.0, source="ASM Handbook vol. 1 (AISI 1010); Incropera Table A.1"),
}


def resolve_materials(user: dict[str, Material] | None) -> dict[str, Material]:
    """Library materials overlaid with the case file's own (same name overrides)."""
    out = dict(LIBRARY)
    out.update(user or {})
    return out
