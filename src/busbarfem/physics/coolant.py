r"""Coolants as named materials with temperature-dependent properties.

Each coolant is a table of density ``rho`` [kg/m^3], specific heat ``cp`` [J/kg/K],
thermal conductivity ``k`` [W/m/K] and dynamic viscosity ``mu`` [Pa s] against the
temperature ``T`` [K] at 101325 Pa, with its source and the range in which it is valid.
Between table points ``rho``, ``cp`` and ``k`` are interpolated linearly and ``mu``
log-linearly (viscosity of liquids is close to Arrhenius in T). Outside the valid range a
:class:`~busbarfem.errors.CaseError` names the coolant, the temperature, the range and
the case key. The tables were written by ``scripts/coolant_tables.py`` (CoolProp 8.0.0);
busbarfem needs no CoolProp at run time.

Coolants:

* ``water``: IAPWS-95 (Wagner & Pruss, J. Phys. Chem. Ref. Data 31, 387 (2002)), viscosity
  IAPWS 2008 (Huber et al., JPCRD 38, 101 (2009)), conductivity IAPWS 2011 (Huber et al.,
  JPCRD 41, 033102 (2012)); liquid at 1 atm, 275-370 K.
* ``ethylene_glycol_50``: 50/50 ethylene glycol-water by volume (freezing point -37 C), the
  ASHRAE Handbook Fundamentals ch. 31 (Physical properties of secondary coolants, inhibited
  ethylene glycol tables) as fitted in CoolProp (INCOMP::AEG, x = 0.5); 240-370 K.
* ``air``: dry air at 1 atm, Lemmon et al., JPCRD 29, 331 (2000) and Lemmon & Jacobsen,
  Int. J. Thermophys. 25, 21 (2004); 200-500 K. Density is the 1 atm value (an open
  channel vented to ambient), not corrected for the channel pressure.
* ``silicone_oil``: a dielectric polydimethylsiloxane heat-transfer fluid, Dow SYLTHERM XLT
  (product data sheet, as fitted in CoolProp INCOMP::XLT); 200-450 K.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from busbarfem.errors import CaseError

#: Property tables: name -> rows of (T [K], rho [kg/m^3], cp [J/kg/K], k [W/m/K], mu [Pa s]).
TABLES: dict[str, tuple[tuple[float, float, float, float, float], ...]] = {
    'water': (
        (275.00, 999.938, 4213.47, 0.560294, 0.00168194),
        (280.00, 999.911, 4200.94, 0.571981, 0.00143357),
        (285.00, 999.517, 4192.36, 0.582589, 0.00123921),
        (290.00, 998.804, 4186.6, 0.592298, 0.00108397),
        (295.00, 997.807, 4182.87, 0.601236, 0.000957811),
        (300.00, 996.557, 4180.64, 0.6095, 0.000853742),
        (305.00, 995.076, 4179.52, 0.61716, 0.000766792),
        (310.00, 993.384, 4179.24, 0.62427, 0.000693329),
        (315.00, 991.496, 4179.62, 0.630871, 0.000630656),
        (320.00, 989.427, 4180.53, 0.636996, 0.000576726),
        (325.00, 987.187, 4181.89, 0.642669, 0.000529967),
        (330.00, 984.787, 4183.65, 0.647911, 0.000489148),
        (335.00, 982.234, 4185.79, 0.652739, 0.000453296),
        (340.00, 979.536, 4188.29, 0.657168, 0.000421634),
        (345.00, 976.699, 4191.18, 0.661209, 0.00039353),
        (350.00, 973.728, 4194.47, 0.664874, 0.00036847),
        (355.00, 970.629, 4198.18, 0.668173, 0.000346029),
        (360.00, 967.404, 4202.34, 0.671115, 0.000325856),
        (365.00, 964.057, 4206.98, 0.673708, 0.000307654),
        (370.00, 960.592, 4212.14, 0.675962, 0.000291175),
    ),
    'ethylene_glycol_50': (
        (240.00, 1089.61, 3075.41, 0.329672, 0.0530146),
        (245.00, 1088.67, 3094.71, 0.335351, 0.037834),
        (250.00, 1087.61, 3114.02, 0.34084, 0.0275987),
        (255.00, 1086.42, 3133.32, 0.34614, 0.0205576),
        (260.00, 1085.11, 3152.62, 0.351251, 0.0156205),
        (265.00, 1083.68, 3171.93, 0.356172, 0.0120952),
        (270.00, 1082.13, 3191.23, 0.360902, 0.00953425),
        (275.00, 1080.45, 3210.53, 0.365442, 0.00764322),
        (280.00, 1078.65, 3229.83, 0.369792, 0.00622503),
        (285.00, 1076.74, 3249.13, 0.37395, 0.00514565),
        (290.00, 1074.7, 3268.44, 0.377918, 0.00431254),
        (295.00, 1072.53, 3287.74, 0.381693, 0.00366083),
        (300.00, 1070.25, 3307.04, 0.385278, 0.0031444),
        (305.00, 1067.84, 3326.35, 0.38867, 0.00273003),
        (310.00, 1065.32, 3345.65, 0.391869, 0.00239348),
        (315.00, 1062.67, 3364.96, 0.394877, 0.0021168),
        (320.00, 1059.9, 3384.27, 0.397691, 0.00188661),
        (325.00, 1057.01, 3403.58, 0.400312, 0.00169275),
        (330.00, 1054, 3422.89, 0.40274, 0.00152747),
        (335.00, 1050.86, 3442.2, 0.404974, 0.00138478),
        (340.00, 1047.61, 3461.52, 0.407014, 0.00126001),
        (345.00, 1044.23, 3480.84, 0.40886, 0.00114952),
        (350.00, 1040.73, 3500.16, 0.410512, 0.00105042),
        (355.00, 1037.11, 3519.48, 0.411969, 0.000960449),
        (360.00, 1033.37, 3538.81, 0.413231, 0.000877832),
        (365.00, 1029.51, 3558.14, 0.414297, 0.000801185),
        (370.00, 1025.53, 3577.48, 0.415168, 0.000729453),
    ),
    'air': (
        (200.00, 1.76917, 1006.8, 0.0185028, 1.33335e-05),
        (220.00, 1.60717, 1006.01, 0.0201593, 1.44428e-05),
        (240.00, 1.47249, 1005.61, 0.0217728, 1.5515e-05),
        (260.00, 1.35872, 1005.55, 0.0233463, 1.65531e-05),
        (280.00, 1.26133, 1005.81, 0.0248827, 1.75598e-05),
        (300.00, 1.177, 1006.37, 0.0263845, 1.85373e-05),
        (320.00, 1.10326, 1007.26, 0.0278542, 1.94879e-05),
        (340.00, 1.03824, 1008.48, 0.029294, 2.04133e-05),
        (360.00, 0.980468, 1010.03, 0.0307059, 2.13154e-05),
        (380.00, 0.928797, 1011.92, 0.0320917, 2.21956e-05),
        (400.00, 0.882307, 1014.14, 0.0334532, 2.30554e-05),
        (420.00, 0.840255, 1016.7, 0.0347919, 2.38962e-05),
        (440.00, 0.802034, 1019.57, 0.0361091, 2.4719e-05),
        (460.00, 0.767141, 1022.73, 0.0374062, 2.55249e-05),
        (480.00, 0.735161, 1026.17, 0.0386843, 2.6315e-05),
        (500.00, 0.705743, 1029.87, 0.0399446, 2.70901e-05),
    ),
    'silicone_oil': (
        (200.00, 950.958, 1576.15, 0.129354, 0.0162932),
        (205.00, 945.823, 1586.65, 0.128438, 0.0132859),
        (210.00, 940.687, 1597.15, 0.127513, 0.010967),
        (215.00, 935.551, 1607.64, 0.126578, 0.0091546),
        (220.00, 930.415, 1618.14, 0.125633, 0.00772024),
        (225.00, 925.279, 1628.64, 0.124679, 0.00657197),
        (230.00, 920.143, 1639.14, 0.123716, 0.00564296),
        (235.00, 915.008, 1649.64, 0.122744, 0.00488395),
        (240.00, 909.872, 1660.14, 0.121762, 0.00425819),
        (245.00, 904.736, 1670.64, 0.120771, 0.00373794),
        (250.00, 899.6, 1681.14, 0.119771, 0.003302),
        (255.00, 894.464, 1691.64, 0.118762, 0.00293404),
        (260.00, 889.328, 1702.14, 0.117744, 0.00262134),
        (265.00, 884.192, 1712.64, 0.116718, 0.0023539),
        (270.00, 879.056, 1723.14, 0.115683, 0.00212381),
        (275.00, 873.92, 1733.63, 0.114639, 0.00192473),
        (280.00, 868.785, 1744.13, 0.113587, 0.00175159),
        (285.00, 863.649, 1754.63, 0.112526, 0.00160024),
        (290.00, 858.513, 1765.13, 0.111457, 0.00146735),
        (295.00, 853.377, 1775.63, 0.11038, 0.00135013),
        (300.00, 848.241, 1786.13, 0.109295, 0.00124631),
        (305.00, 843.105, 1796.63, 0.108201, 0.001154),
        (310.00, 837.969, 1807.13, 0.1071, 0.00107161),
        (315.00, 832.833, 1817.63, 0.10599, 0.00099782),
        (320.00, 827.697, 1828.13, 0.104873, 0.000931511),
        (325.00, 822.561, 1838.63, 0.103748, 0.000871734),
        (330.00, 817.425, 1849.13, 0.102615, 0.000817683),
        (335.00, 812.289, 1859.63, 0.101475, 0.000768668),
        (340.00, 807.154, 1870.13, 0.100327, 0.000724099),
        (345.00, 802.018, 1880.63, 0.0991718, 0.000683465),
        (350.00, 796.882, 1891.13, 0.0980092, 0.000646328),
        (355.00, 791.746, 1901.63, 0.0968394, 0.000612305),
        (360.00, 786.61, 1912.13, 0.0956624, 0.000581065),
        (365.00, 781.474, 1922.63, 0.0944784, 0.000552317),
        (370.00, 776.338, 1933.13, 0.0932873, 0.000525807),
        (375.00, 771.202, 1943.63, 0.0920894, 0.000501313),
        (380.00, 766.067, 1954.13, 0.0908846, 0.000478637),
        (385.00, 760.931, 1964.63, 0.089673, 0.000457607),
        (390.00, 755.795, 1975.13, 0.0884548, 0.000438068),
        (395.00, 750.659, 1985.63, 0.08723, 0.000419884),
        (400.00, 745.523, 1996.13, 0.0859987, 0.000402933),
        (405.00, 740.388, 2006.63, 0.0847611, 0.000387108),
        (410.00, 735.252, 2017.13, 0.083517, 0.000372311),
        (415.00, 730.116, 2027.63, 0.0822668, 0.000358455),
        (420.00, 724.98, 2038.13, 0.0810104, 0.000345462),
        (425.00, 719.845, 2048.63, 0.0797479, 0.000333262),
        (430.00, 714.709, 2059.13, 0.0784794, 0.000321793),
        (435.00, 709.573, 2069.64, 0.077205, 0.000310996),
        (440.00, 704.438, 2080.14, 0.0759248, 0.00030082),
        (445.00, 699.302, 2090.64, 0.0746388, 0.000291218),
        (450.00, 694.166, 2101.14, 0.0733472, 0.000282147),
    ),
}

SOURCES: dict[str, str] = {
    "water": "IAPWS-95 (Wagner & Pruss 2002), IAPWS 2008 viscosity, IAPWS 2011 conductivity; via CoolProp 8.0",
    "ethylene_glycol_50": "ASHRAE Handbook Fundamentals ch. 31, ethylene glycol 50 % by volume; CoolProp 8.0 fit INCOMP::AEG",
    "air": "Lemmon et al. 2000 (EOS), Lemmon & Jacobsen 2004 (transport), 1 atm; via CoolProp 8.0",
    "silicone_oil": "Dow SYLTHERM XLT product data sheet; CoolProp 8.0 fit INCOMP::XLT",
}


@dataclass(frozen=True)
class Coolant:
    """A coolant with tabulated properties ``rho(T)``, ``cp(T)``, ``k(T)``, ``mu(T)``.

    Attributes:
        name: the library name.
        table: rows (T, rho, cp, k, mu), T increasing.
        source: citation of the numbers.
    """

    name: str
    table: tuple[tuple[float, float, float, float, float], ...]
    source: str
    _arr: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        arr = np.asarray(self.table, float)
        if arr.ndim != 2 or arr.shape[1] != 5 or np.any(np.diff(arr[:, 0]) <= 0) or np.any(arr[:, 1:] <= 0):
            raise ValueError(f"coolant {self.name!r}: table must be rows (T, rho, cp, k, mu), T increasing, values > 0")
        object.__setattr__(self, "_arr", arr)

    @property
    def T_min(self) -> float:
        """Lowest valid temperature [K]."""
        return float(self._arr[0, 0])

    @property
    def T_max(self) -> float:
        """Highest valid temperature [K]."""
        return float(self._arr[-1, 0])

    def check(self, T, key: str | None = None) -> np.ndarray:
        """Return ``T`` as an array, or raise a located CaseError if any value is outside the range."""
        if isinstance(T, float) and self._arr[0, 0] - 1e-9 <= T <= self._arr[-1, 0] + 1e-9:
            return np.asarray(T)  # the 1D march's scalar calls: a valid number (NaN fails the test)
        T = np.asarray(T, float)
        bad = ~np.isfinite(T) | (T < self.T_min - 1e-9) | (T > self.T_max + 1e-9)
        if np.any(bad):
            worst = T[bad].flat[0]
            raise CaseError(f"coolant {self.name!r} at {worst:.6g} K is outside its valid range "
                            f"{self.T_min:g}-{self.T_max:g} K ({self.source}); choose a coolant valid "
                            "there or change the inlet temperature or flow rate", key=key)
        return T

    def _interp(self, T, col: int, key: str | None, log: bool = False):
        T = self.check(T, key)
        y = self._arr[:, col]
        out = np.exp(np.interp(T, self._arr[:, 0], np.log(y))) if log else np.interp(T, self._arr[:, 0], y)
        return float(out) if out.ndim == 0 else out

    def rho(self, T, key: str | None = None):
        """Density [kg/m^3]."""
        return self._interp(T, 1, key)

    def cp(self, T, key: str | None = None):
        """Specific heat capacity [J/kg/K]."""
        return self._interp(T, 2, key)

    def k(self, T, key: str | None = None):
        """Thermal conductivity [W/m/K]."""
        return self._interp(T, 3, key)

    def mu(self, T, key: str | None = None):
        """Dynamic viscosity [Pa s] (log-linear between table points)."""
        return self._interp(T, 4, key, log=True)

    def prandtl(self, T, key: str | None = None):
        """Prandtl number ``mu cp / k`` [-]."""
        return self.mu(T, key) * self.cp(T, key) / self.k(T, key)


#: The coolant library by name.
COOLANTS: dict[str, Coolant] = {name: Coolant(name, rows, SOURCES[name]) for name, rows in TABLES.items()}


def coolant(name: str, key: str | None = None) -> Coolant:
    """The library coolant ``name``; a CaseError lists the valid names if it is unknown."""
    try:
        return COOLANTS[name]
    except KeyError:
        raise CaseError(f"unknown coolant {name!r}", key=key, choices=COOLANTS, bad=name) from None
