"""SIGRID-3 ice-chart codes -> concentrations and SIC / SOD / FLOE classes (AI4Arctic rules).

The rules are those of shared docs ai4arctic-format.md, section "Ice-chart codes":
  * CT / CA / CB / CC concentration codes: 0, 1, 2, 55 water; 10..90 tens of percent; 91 9+/10
    (0.95, SIC class 10); 92 10/10; range codes `XY` (X < Y) "X/10 to Y/10" and `X1` "X/10 to 10/10"
    give the interval's mid value; -9 not filled, 99 unknown (NaN).
  * SOD from stage codes SA/SB/SC, FLOE from form codes FA/FB/FC; a polygon gets a class only when
    the partial concentrations of the ice types that map to it reach 65 % of CT.

Raw scenes hold one polygon id per pixel, so everything is computed once per polygon and applied to
the raster with a single fancy-index (`PolygonLookup.apply`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from seaice_jax.data.channels import CHART_FILL, LEGACY_POLYGON_CODES_HEADER, POLYGON_CODES_HEADER
from seaice_jax.data.scene_types import SceneError

NOT_FILLED = -9
UNKNOWN = 99
WATER_CT_CODES = frozenset({0, 1, 2, 55})
NINE_PLUS_CT = 91
FULL_CT = 92  # 10/10 (also how fast ice is charted)
FAST_ICE_CT = FULL_CT
FAST_ICE_FLOE_CODE = 8
DOMINANCE_FRACTION = 0.65  # share of CT the ice types of one class must reach

CODE_COLUMNS = ("CT", "CA", "SA", "FA", "CB", "SB", "FB", "CC", "SC", "FC", "CN", "CD", "CF")
POLY_TYPES = frozenset({"W", "L", "I", "N"})

# Stage of development code -> SOD class (codes not listed, e.g. 98 glacier, 99 unknown -> 255).
SOD_CLASS_OF_STAGE: dict[int, int] = {
    0: 0, 80: 0,
    81: 1, 82: 1,
    83: 2, 84: 2, 85: 2,
    87: 3, 88: 3, 89: 3,
    86: 4, 91: 4, 93: 4,
    95: 5, 96: 5, 97: 5,
}
# Form (floe size) code -> FLOE class (1 shuga, 22 pancake, 8 fast ice, 21 level ice, ... -> 255).
FLOE_CLASS_OF_FORM: dict[int, int] = {
    0: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 5, 9: 6, 10: 6,
}


def _range_code_bounds(code: int) -> tuple[int, int] | None:
    """(low, high) tenths of a range code, else None.

    `XY` with 1 <= X < Y <= 9 means X/10 to Y/10 (12 .. 89); `X1` with 2 <= X <= 8 means X/10 to
    10/10 (a second digit 1 stands for 10/10: 21 .. 81). Multiples of ten (10..90), 91 and 92 are
    never range codes.
    """
    if not 12 <= code <= 89:
        return None
    low, high = divmod(code, 10)
    if high == 1 and 2 <= low <= 8:
        return low, 10
    if high == 0 or low >= high:
        return None
    return low, high


def is_known_concentration_code(code: int) -> bool:
    """Whether a CT / CA / CB / CC code is in the SIGRID table (-9 and 99 count as known)."""
    code = int(code)
    return (code in (NOT_FILLED, UNKNOWN) or not math.isnan(concentration_from_ct(code)))


def concentration_from_ct(ct: int) -> float:
    """Ice concentration in [0, 1] of a SIGRID concentration code (CT, CA, CB or CC).

    Water codes (0, 1, 2, 55) -> 0; 10..90 -> 0.1..0.9; 91 (9+/10) -> 0.95; 92 (10/10) -> 1; a range
    code -> its interval's mid value: `XY` (X < Y) -> (X + Y) / 20, e.g. 57 -> 0.6; `X1` -> (X/10 + 1)
    / 2, e.g. 81 -> 0.9. -9 (not filled), 99 (unknown) and any code outside the table -> NaN
    (unknown, never water).
    """
    ct = int(ct)
    if ct in WATER_CT_CODES:
        return 0.0
    if ct == NINE_PLUS_CT:
        return 0.95
    if ct == FAST_ICE_CT:
        return 1.0
    if 10 <= ct <= 90 and ct % 10 == 0:
        return ct / 100.0
    bounds = _range_code_bounds(ct)
    if bounds is not None:
        return (bounds[0] + bounds[1]) / 20.0
    return math.nan


def _class_of_concentration(conc: float) -> int:
    """SIC class 0..10 of a concentration in [0, 1]; a half tenth rounds up (0.85 -> 9)."""
    return int(math.floor(conc * 10.0 + 0.5 + 1e-9))


def sic_class_from_ct(ct: int) -> int:
    """SIC class of a CT code: 0 water, 1..9 for 10..90 %, 10 for 91 / 92, 255 unknown.

    A range code gets the class of its mid value rounded half up (57 -> 0.6 -> 6, 89 -> 0.85 -> 9,
    12 -> 0.15 -> 2, 81 -> 0.9 -> 9).
    """
    if int(ct) == NINE_PLUS_CT:
        return 10
    conc = concentration_from_ct(ct)
    if math.isnan(conc):
        return CHART_FILL
    return _class_of_concentration(conc)


def _partial_percent(code: int) -> float:
    """Partial concentration in percent; not filled / unknown counts as 0."""
    conc = concentration_from_ct(code)
    return 0.0 if math.isnan(conc) else 100.0 * conc


def _dominant_class(
    partials: list[float], type_codes: list[int], class_of_code: dict[int, int], ct_percent: float
) -> int:
    """Class whose ice types add up to >= 65 % of CT, else 255.

    partials: partial concentrations (%) of the ice types A, B, C; type_codes: their stage / form code.
    """
    total_by_class: dict[int, float] = {}
    for partial, code in zip(partials, type_codes, strict=True):
        if partial <= 0.0:
            continue
        cls = class_of_code.get(int(code), CHART_FILL)
        total_by_class[cls] = total_by_class.get(cls, 0.0) + partial
    if not total_by_class:
        return CHART_FILL
    best_class, best_total = max(total_by_class.items(), key=lambda kv: kv[1])
    if best_class == CHART_FILL or best_total < DOMINANCE_FRACTION * ct_percent - 1e-6:
        return CHART_FILL
    return best_class


def polygon_concentration(row: dict[str, int | str]) -> float:
    """Total ice concentration in [0, 1] of one polygon: W -> 0, L / N -> NaN, I -> from CT."""
    poly_type = str(row.get("POLY_TYPE", "I")).strip().upper()
    if poly_type == "W":
        return 0.0
    if poly_type != "I":
        return math.nan
    return concentration_from_ct(int(row.get("CT", NOT_FILLED)))


def polygon_classes(row: dict[str, int | str]) -> tuple[int, int, int]:
    """(SIC, SOD, FLOE) classes of one polygon from its SIGRID codes.

    row: keys CT, CA, SA, FA, CB, SB, FB, CC, SC, FC (int, -9 = not filled) and POLY_TYPE (str).
    """
    masked = (CHART_FILL, CHART_FILL, CHART_FILL)
    poly_type = str(row.get("POLY_TYPE", "I")).strip().upper()
    if poly_type == "W":
        return 0, 0, 0
    if poly_type != "I":
        return masked
    code = lambda key: int(row.get(key, NOT_FILLED))  # noqa: E731
    ct = code("CT")
    sic = sic_class_from_ct(ct)
    if sic == CHART_FILL:
        return masked
    if sic == 0:
        return 0, 0, 0
    ct_percent = 100.0 * concentration_from_ct(ct)
    ca = code("CA")
    if ca == NOT_FILLED:  # a single-ice-type polygon leaves CA empty: it then holds all of CT
        ca = ct
    partials = [_partial_percent(ca), _partial_percent(code("CB")), _partial_percent(code("CC"))]
    stages = [code("SA"), code("SB"), code("SC")]
    forms = [code("FA"), code("FB"), code("FC")]
    sod = _dominant_class(partials, stages, SOD_CLASS_OF_STAGE, ct_percent)
    if FAST_ICE_FLOE_CODE in forms:
        floe = CHART_FILL
    else:
        floe = _dominant_class(partials, forms, FLOE_CLASS_OF_FORM, ct_percent)
    return sic, sod, floe


def _as_text(line) -> str:
    if isinstance(line, bytes):
        return line.decode("utf-8", errors="replace")
    return str(line)


def _parse_code(field: str) -> int:
    """One integer code; empty -> -9; zero-padded '02' -> 2; '57.0' -> 57."""
    field = field.strip()
    if field == "" or field.lower() == "nan":
        return NOT_FILLED
    value = float(field)
    if not value.is_integer():
        raise ValueError(f"code {field!r} is not an integer")
    return int(value)


# Stage / form codes that are in the table but give no class (glacier, unknown, shuga, ...).
MASKED_STAGE_CODES = frozenset({98, UNKNOWN, NOT_FILLED})
MASKED_FORM_CODES = frozenset({1, 8, 21, 22, UNKNOWN, NOT_FILLED})
STRING_COLUMNS = ("CF",)  # a compound such as `08-9`: kept as text, not used by the rules


def unknown_codes(row: dict) -> list[str]:
    """Codes of one polygon row that are outside the SIGRID tables, as `COLUMN=code` strings.

    Concentrations CT, CA, CB, CC; stages SA, SB, SC; forms FA, FB, FC (CN, CD, CF are not used).
    """
    if str(row.get("POLY_TYPE", "I")).strip().upper() != "I":
        return []
    out = []
    for col in ("CT", "CA", "CB", "CC"):
        if not is_known_concentration_code(int(row.get(col, NOT_FILLED))):
            out.append(f"{col}={int(row[col])}")
    for col in ("SA", "SB", "SC"):
        code = int(row.get(col, NOT_FILLED))
        if code not in SOD_CLASS_OF_STAGE and code not in MASKED_STAGE_CODES:
            out.append(f"{col}={code}")
    for col in ("FA", "FB", "FC"):
        code = int(row.get(col, NOT_FILLED))
        if code not in FLOE_CLASS_OF_FORM and code not in MASKED_FORM_CODES:
            out.append(f"{col}={code}")
    return out


def parse_polygon_codes(lines: list[str], path: str) -> dict[int, dict]:
    """Parse the `polygon_codes` table of a raw scene.

    lines: row 0 the header `poly_id;CT;...;CF;POLY_TYPE` (the older synthetic `id;...` is accepted),
    then one `;`-separated row per polygon (str or bytes). Codes may be zero-padded (`02`); `CF` is a
    compound such as `08-9` and is kept as text.
    Returns polygon id -> {code column: int (CF: str), 'POLY_TYPE': str}. Raises SceneError naming
    `path` for a bad header, a row with the wrong number of fields, a non-integer code, an unknown
    POLY_TYPE or a duplicate id.
    """
    name = path
    if not lines:
        raise SceneError(f"{name}: polygon_codes is empty (no header)")
    header = [h.strip() for h in _as_text(lines[0]).split(";")]
    expected = POLYGON_CODES_HEADER.split(";")
    if header != expected and header != LEGACY_POLYGON_CODES_HEADER.split(";"):
        raise SceneError(
            f"{name}: polygon_codes header {';'.join(header)!r} != expected {POLYGON_CODES_HEADER!r}"
        )
    table: dict[int, dict] = {}
    for row_index, raw_line in enumerate(lines[1:], start=1):
        text = _as_text(raw_line).strip()
        if not text:
            continue
        fields = text.split(";")
        if len(fields) != len(expected):
            raise SceneError(
                f"{name}: polygon_codes row {row_index} has {len(fields)} fields, expected "
                f"{len(expected)}: {text!r}"
            )
        try:
            poly_id = _parse_code(fields[0])
            codes = {col: (f.strip() if col in STRING_COLUMNS else _parse_code(f))
                     for col, f in zip(CODE_COLUMNS, fields[1:-1], strict=True)}
        except ValueError as err:
            raise SceneError(f"{name}: polygon_codes row {row_index} {text!r}: {err}") from None
        poly_type = fields[-1].strip().upper()
        if poly_type not in POLY_TYPES:
            raise SceneError(
                f"{name}: polygon_codes row {row_index} has POLY_TYPE {poly_type!r}, expected one of W, L, I, N"
            )
        if poly_id < 0:
            raise SceneError(f"{name}: polygon_codes row {row_index} has negative id {poly_id}")
        if poly_id in table:
            raise SceneError(f"{name}: polygon_codes row {row_index} repeats polygon id {poly_id}")
        codes["POLY_TYPE"] = poly_type
        table[poly_id] = codes
    return table


def format_code(code) -> str:
    """A code as real files write it: zero-padded to two digits, `-9` for not filled."""
    if isinstance(code, str):
        return code
    code = int(code)
    return str(code) if code < 0 else f"{code:02d}"


def polygon_code_line(poly_id: int, row: dict) -> str:
    """One `polygon_codes` row in the real layout, e.g. `76;02;-9;98;10;-9;...;10-9;W`."""
    return ";".join([str(int(poly_id))] + [format_code(row.get(c, NOT_FILLED)) for c in CODE_COLUMNS]
                    + [str(row["POLY_TYPE"])])


INDEX_SLICE = 1 << 22  # pixels per slice of `PolygonLookup.index_of`


@dataclasses.dataclass(frozen=True)
class PolygonLookup:
    """Per-polygon values indexed by polygon id (length max id + 2; the last entry = unknown id).

    sic, sod, floe: uint8 [N] classes (255 = masked); conc: float32 [N] total concentration (NaN =
    unknown); poly_type: '<U1' [N] ('' for ids not in the table); known: bool [N].
    """

    sic: np.ndarray
    sod: np.ndarray
    floe: np.ndarray
    conc: np.ndarray
    poly_type: np.ndarray
    known: np.ndarray
    unknown: dict[int, list[str]] = dataclasses.field(default_factory=dict)  # id -> unknown codes

    @property
    def missing_index(self) -> int:
        return len(self.known) - 1

    def index_of(self, polygon_raster: np.ndarray) -> np.ndarray:
        """Lookup index per pixel: the polygon id, or `missing_index` for NaN / negative / unknown ids.

        polygon_raster: [H, W] int or float (NaN fill). Returns int32 [H, W].
        """
        raster = np.asarray(polygon_raster)
        missing = self.missing_index
        # int32 halves the memory of a 10 000 x 10 000 raster; table sizes are far below 2**31.
        out = np.empty(raster.shape, np.int32)
        flat_raster, flat_out = np.ravel(raster), out.reshape(-1)
        # In slices, so the temporaries (NaN-free ids, the out-of-table mask) stay small.
        for start in range(0, flat_raster.size, INDEX_SLICE):
            part = flat_raster[start : start + INDEX_SLICE]
            ids = np.where(np.isfinite(part), part, -1) if np.issubdtype(part.dtype, np.floating) else part
            flat_out[start : start + INDEX_SLICE] = np.where((ids < 0) | (ids >= missing), missing, ids)
        return out


def polygon_tables_to_lookup(table: dict[int, dict]) -> PolygonLookup:
    """Build id-indexed arrays of classes and concentrations from a parsed polygon table."""
    size = (max(table) + 1 if table else 0) + 1  # +1: a final entry for ids not in the table
    sic = np.full(size, CHART_FILL, np.uint8)
    sod = np.full(size, CHART_FILL, np.uint8)
    floe = np.full(size, CHART_FILL, np.uint8)
    conc = np.full(size, np.nan, np.float32)
    poly_type = np.full(size, "", "<U1")
    known = np.zeros(size, bool)
    unknown: dict[int, list[str]] = {}
    for poly_id, row in table.items():
        sic[poly_id], sod[poly_id], floe[poly_id] = polygon_classes(row)
        conc[poly_id] = polygon_concentration(row)
        poly_type[poly_id] = row["POLY_TYPE"]
        known[poly_id] = True
        bad = unknown_codes(row)
        if bad:
            unknown[poly_id] = bad
    return PolygonLookup(sic=sic, sod=sod, floe=floe, conc=conc, poly_type=poly_type, known=known,
                         unknown=unknown)


def charts_from_polygons(
    lookup: PolygonLookup, polygon_raster: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(SIC, SOD, FLOE) uint8 [H, W] rasters from a polygon-id raster [H, W] (one fancy-index each)."""
    index = lookup.index_of(polygon_raster)
    return lookup.sic[index], lookup.sod[index], lookup.floe[index]
