"""An index of altimetry folders: per file its time span and where it lies, built once and cached, so a
SAR scene opens only the granules that can overlap it.

`build_index(folders, cache_path)` walks the folders (recursively; a `.SEN3` folder is one product;
names starting with '.' are skipped and counted) and reads every file once with `open_altimetry`,
keeping only a summary: product, mission, tracks, points (all / good), time span and a list of
*pieces*: the file's points cut into time bins of `piece_s` seconds (60 s ~ 420 km along an orbit),
each with its time span and a `Region`. Files that are not supported products are kept as 'unusable'
with their one-line reason; products without any point (every beam skipped) as 'empty'.

Region: the axis-aligned box of the points as 3-D unit vectors (x, y, z on the unit sphere), padded by
a margin. Two point sets that share a location have intersecting boxes, so the filter is conservative,
and it has no special case at the poles or across the antimeridian (no longitude is compared). The
padding covers the footprints (`pad_m`, 2 km by default: over half the CryoSat-2 across-track
footprint) and the bulge of the sphere between the points (the sagitta of the box's diagonal), so a
scene whose tie points are km apart is covered between them too.

Cache (JSON, written atomically: temporary file + rename) beside the shards, e.g.
`<shards>/altimetry_index.json`: per folder (absolute path) its entries by path relative to it, with size
and mtime (ns). The next build reuses every entry whose file has the same size and mtime, reads new
or changed files again and drops deleted ones (and folders not asked for). A moved folder is a new
folder: its files are read again (nothing stale is ever served), and the old folder's entries dropped.
A cache of another format version or other settings (`beams`, `piece_s`, `pad_m`) is rebuilt; a file
at the cache path that is not an index at all is refused (ValueError), never overwritten.

`candidates(index, start_s, end_s, region)`: the files (absolute paths) with a piece whose time span
overlaps [start_s, end_s] and whose region intersects `region` (from `region_of_points(lat, lon,
margin_m)` of the scene's tie points). None for a bound means unbounded.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from seaice_jax.altimetry.products import open_altimetry
from seaice_jax.altimetry.sentinel3 import MEASUREMENT_FILE
from seaice_jax.altimetry.track import AltimetryFormatError, Swath
from seaice_jax.fileio import write_json

INDEX_FORMAT = "seaice_jax.altimetry_index"
INDEX_VERSION = 1
CACHE_NAME = "altimetry_index.json"
EARTH_RADIUS_M = 6_371_000.0
PIECE_S = 60.0
PAD_M = 2000.0
# what a broken file may raise in the HDF5 / netCDF libraries besides AltimetryFormatError
_READ_ERRORS = (AltimetryFormatError, OSError, ValueError, KeyError, IndexError, RuntimeError)


@dataclasses.dataclass(frozen=True)
class Region:
    """An axis-aligned box around points on the unit sphere: lo / hi = (x, y, z) bounds."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]

    def intersects(self, other: Region | None) -> bool:
        if other is None:
            return False
        return all(a_lo <= b_hi and b_lo <= a_hi
                   for a_lo, a_hi, b_lo, b_hi in zip(self.lo, self.hi, other.lo, other.hi, strict=True))

    def padded(self, margin_m: float) -> Region:
        m = float(margin_m) / EARTH_RADIUS_M  # an arc of margin_m moves a coordinate by at most its chord < m
        return Region(tuple(v - m for v in self.lo), tuple(v + m for v in self.hi))

    def to_list(self) -> list[float]:
        return [round(float(v), 9) for pair in zip(self.lo, self.hi, strict=True) for v in pair]

    @classmethod
    def from_list(cls, v) -> Region:
        return cls((v[0], v[2], v[4]), (v[1], v[3], v[5]))


def unit_vectors(lat, lon) -> np.ndarray:
    """[N, 3] points on the unit sphere from degrees."""
    la, lo = np.deg2rad(np.asarray(lat, np.float64)), np.deg2rad(np.asarray(lon, np.float64))
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1).reshape(-1, 3)


def region_of_box(lo, hi, margin_m: float = 0.0) -> Region:
    """The box [lo, hi] of unit vectors padded by `margin_m` plus the sphere's bulge over the box's
    diagonal (so great-circle arcs between the points inside stay inside)."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    chord = min(float(np.linalg.norm(hi - lo)), 2.0)
    sagitta = 1.0 - np.sqrt(max(0.0, 1.0 - chord**2 / 4.0))
    return Region(tuple(lo.tolist()), tuple(hi.tolist())).padded(float(margin_m) + sagitta * EARTH_RADIUS_M)


def region_of_points(lat, lon, margin_m: float = 0.0) -> Region | None:
    """The box of the finite points (degrees), padded by `margin_m` and the bulge (`region_of_box`);
    None without a finite point."""
    xyz = unit_vectors(lat, lon)
    xyz = xyz[np.isfinite(xyz).all(1)]
    if xyz.shape[0] == 0:
        return None
    return region_of_box(xyz.min(0), xyz.max(0), margin_m)


@dataclasses.dataclass
class IndexEntry:
    """One file (or `.SEN3` folder) of an indexed folder."""

    folder: str  # absolute folder it was found under
    path: str  # relative to `folder`, '/'-separated
    size: int
    mtime_ns: int
    status: str  # 'ok' | 'empty' (a product without points) | 'unusable' (not a supported product)
    reason: str = ""  # the reader's one line, for 'unusable' / 'empty'
    product: str = ""
    mission: str = ""
    n_tracks: int = 0
    n_points: int = 0
    n_good: int = 0
    t_min: float | None = None
    t_max: float | None = None
    pieces: list = dataclasses.field(default_factory=list)  # [t0, t1, x0, x1, y0, y1, z0, z1]
    notes: list = dataclasses.field(default_factory=list)  # the reader's notes (skipped beams)

    @property
    def full_path(self) -> str:
        return os.path.join(self.folder, *self.path.split("/"))

    def overlaps(self, start_s: float | None, end_s: float | None, region: Region | None) -> bool:
        if self.status != "ok":
            return False
        for p in self.pieces:
            if start_s is not None and p[1] < start_s:
                continue
            if end_s is not None and p[0] > end_s:
                continue
            if region is None or Region.from_list(p[2:]).intersects(region):
                return True
        return False


@dataclasses.dataclass
class AltimetryIndex:
    entries: list[IndexEntry]
    settings: dict
    stats: dict  # files, read, reused, dropped, ok, empty, unusable, hidden_skipped
    notes: list[str]  # cache events (rebuilt, dropped folders)
    cache_path: str | None = None

    def candidates(self, start_s: float | None, end_s: float | None, region: Region | None) -> list[str]:
        return sorted(e.full_path for e in self.entries if e.overlaps(start_s, end_s, region))

    def of_status(self, status: str) -> list[IndexEntry]:
        return [e for e in self.entries if e.status == status]

    def summary(self) -> str:
        s = self.stats
        return (f"altimetry index: {s['files']} files ({s['ok']} usable, {s['empty']} without points, "
                f"{s['unusable']} unusable, {s['hidden_skipped']} hidden skipped); read {s['read']}, "
                f"reused {s['reused']} from the cache, dropped {s['dropped']}" + self._unusable_line())

    def _unusable_line(self, shown: int = 3) -> str:
        """'; unusable: <file>: <reason>; ...' for the first `shown` files not of a supported product."""
        bad = self.of_status("unusable")
        if not bad:
            return ""
        listed = "; ".join(e.reason if e.reason.startswith(e.full_path) else f"{e.full_path}: {e.reason}".rstrip(": ")
                           for e in bad[:shown])
        return f"; unusable: {listed}" + (f"; and {len(bad) - shown} more" if len(bad) > shown else "")


def candidates(index: AltimetryIndex, start_s: float | None, end_s: float | None, region: Region | None) -> list[str]:
    """The files of `index` that can overlap [start_s, end_s] x `region` (absolute paths, sorted)."""
    return index.candidates(start_s, end_s, region)


# ------------------------------------------------------------------------------------------ walking
def _stat(path: str) -> tuple[int, int]:
    target = os.path.join(path, MEASUREMENT_FILE) if os.path.isdir(path) else path
    if not os.path.exists(target):
        target = path
    st = os.stat(target)
    return int(st.st_size), int(st.st_mtime_ns)


def _walk(folder: str, exclude: set[str]) -> tuple[list[str], int]:
    """(relative paths of the files and `.SEN3` folders under `folder`, hidden names skipped)."""
    found, hidden = [], 0
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        keep = []
        for d in dirs:
            if d.startswith("."):
                hidden += 1
            elif d.upper().endswith(".SEN3"):
                found.append(os.path.relpath(os.path.join(root, d), folder))
            else:
                keep.append(d)
        dirs[:] = keep
        for name in sorted(files):
            full = os.path.join(root, name)
            if os.path.abspath(full) in exclude:
                continue
            if name.startswith("."):
                hidden += 1
                continue
            found.append(os.path.relpath(full, folder))
    return sorted(p.replace(os.sep, "/") for p in found), hidden


def _geolocated(t, lat, lon) -> np.ndarray:
    """Finite time and position, and not the readers' (0, 0) stand-in for a missing position."""
    return np.isfinite(t) & np.isfinite(lat) & np.isfinite(lon) & ~((lat == 0) & (lon == 0))


def _summarise(entry: IndexEntry, items, piece_s: float, pad_m: float) -> None:
    """Counts, time span and pieces of what a file held. A piece is built from one time bin at a time
    (a SWOT swath: its lines of that bin), so memory stays that of the reader's arrays."""
    entry.n_tracks = len(items)
    if items:
        entry.product, entry.mission = items[0].product, items[0].mission
    t_min = np.inf
    for it in items:
        if isinstance(it, Swath):
            lat, lon = np.asarray(it.latitude), np.asarray(it.longitude)
            line_t = np.asarray(it.time, np.float64)
            ok = _geolocated(line_t[:, None], lat, lon)
            entry.n_points += int(lat.size)
            entry.n_good += int(np.asarray(it.quality).sum())
            if ok.any():
                t_min = min(t_min, float(line_t[ok.any(1)].min()))
        else:
            ok = _geolocated(it.time, it.latitude, it.longitude)
            entry.n_points += len(it)
            entry.n_good += int(it.quality.sum())
            if ok.any():
                t_min = min(t_min, float(it.time[ok].min()))
    if not np.isfinite(t_min):
        entry.status = "empty"
        entry.reason = entry.reason or f"{entry.full_path}: no geolocated point"
        return
    boxes: dict[int, list] = {}  # time bin -> [t0, t1, lo (3), hi (3)]

    def add(b, t, lat, lon):
        xyz = unit_vectors(lat, lon)
        lo, hi = xyz.min(0), xyz.max(0)
        cur = boxes.get(b)
        if cur is None:
            boxes[b] = [float(t.min()), float(t.max()), lo, hi]
        else:
            cur[0], cur[1] = min(cur[0], float(t.min())), max(cur[1], float(t.max()))
            cur[2], cur[3] = np.minimum(cur[2], lo), np.maximum(cur[3], hi)

    for it in items:
        if isinstance(it, Swath):
            line_t = np.asarray(it.time, np.float64)
            line_bin = np.floor((line_t - t_min) / piece_s)
            for b in np.unique(line_bin[np.isfinite(line_bin)]):
                rows = np.flatnonzero(line_bin == b)
                lat, lon = np.asarray(it.latitude[rows]), np.asarray(it.longitude[rows])
                ok = _geolocated(line_t[rows][:, None], lat, lon)
                if ok.any():
                    add(int(b), line_t[rows][ok.any(1)], lat[ok], lon[ok])
        else:
            ok = _geolocated(it.time, it.latitude, it.longitude)
            t, lat, lon = it.time[ok], it.latitude[ok], it.longitude[ok]
            bins = np.floor((t - t_min) / piece_s).astype(np.int64)
            for b in np.unique(bins):
                sel = bins == b
                add(int(b), t[sel], lat[sel], lon[sel])
    entry.status = "ok"
    entry.pieces = [[t0, t1] + region_of_box(lo, hi, pad_m).to_list()
                    for _, (t0, t1, lo, hi) in sorted(boxes.items())]
    entry.t_min = min(p[0] for p in entry.pieces)
    entry.t_max = max(p[1] for p in entry.pieces)


def _read_entry(folder: str, rel: str, size: int, mtime_ns: int, beams, piece_s: float, pad_m: float) -> IndexEntry:
    entry = IndexEntry(folder=folder, path=rel, size=size, mtime_ns=mtime_ns, status="unusable")
    notes: list[str] = []
    try:
        items = open_altimetry(entry.full_path, notes=notes, beams=beams)
    except _READ_ERRORS as e:
        msg = str(e) if isinstance(e, AltimetryFormatError) else f"{entry.full_path}: {type(e).__name__}: {e}"
        entry.reason = msg.replace("\n", " ")
        return entry
    entry.notes = notes
    if not items:
        entry.reason = f"{entry.full_path}: no track with points" + (f" ({len(notes)} beams skipped)" if notes else "")
    _summarise(entry, items, piece_s, pad_m)
    return entry


# -------------------------------------------------------------------------------------------- cache
def _settings(beams, piece_s, pad_m) -> dict:
    return {"beams": beams if isinstance(beams, str) else list(beams), "piece_s": float(piece_s), "pad_m": float(pad_m)}


def load_cache(cache_path: str) -> tuple[dict | None, str]:
    """(the cache's JSON, '') or (None, why it cannot be used: another version). A file there that is
    not an altimetry index at all raises ValueError (one line): it is someone else's, never overwritten
    (the cache is written atomically, so a half-written cache does not happen)."""
    if not os.path.exists(cache_path):
        return None, ""
    try:
        with open(cache_path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{cache_path}: not an altimetry index ({type(e).__name__}); not overwritten: "
                         "remove it or give another index cache path") from None
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        raise ValueError(f"{cache_path}: not an altimetry index (no format {INDEX_FORMAT!r}); not overwritten: "
                         "remove it or give another index cache path")
    if data.get("version") != INDEX_VERSION:
        return None, f"{cache_path}: index version {data.get('version')}, this code writes {INDEX_VERSION}: rebuilt"
    return data, ""


def _entry_from_json(folder: str, rel: str, d: dict) -> IndexEntry:
    fields = {f.name for f in dataclasses.fields(IndexEntry)} - {"folder", "path"}
    return IndexEntry(folder=folder, path=rel, **{k: v for k, v in d.items() if k in fields})


def _entry_to_json(e: IndexEntry) -> dict:
    d = dataclasses.asdict(e)
    d.pop("folder")
    d.pop("path")
    return d


def build_index(folders, cache_path: str | None = None, *, beams="strong", piece_s: float = PIECE_S,
                pad_m: float = PAD_M) -> AltimetryIndex:
    """The index of every file under `folders` (a path or a list; a file or `.SEN3` folder given
    directly is indexed alone), reusing `cache_path` when given (entries whose size and mtime did not
    change) and writing it back when anything changed. A path that does not exist raises
    FileNotFoundError.

    beams: ICESat-2 beams as the caller will read them ('strong', 'all' or names)."""
    folders = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
    # folder -> None (walk it all) or the names given as single files (a file or `.SEN3` folder given
    # directly is indexed under its parent folder)
    targets: dict[str, set[str] | None] = {}
    for fo in folders:
        a = os.path.realpath(os.fspath(fo))
        if not os.path.exists(a):
            raise FileNotFoundError(f"{fo}: altimetry folder does not exist")
        if os.path.isdir(a) and not a.upper().endswith(".SEN3"):
            targets[a] = None
        else:
            parent, name = os.path.split(a)
            if targets.get(parent, set()) is not None:
                targets.setdefault(parent, set()).add(name)
    abs_folders = list(targets)
    settings = _settings(beams, piece_s, pad_m)
    notes: list[str] = []
    cached: dict = {}
    if cache_path is not None:
        data, why = load_cache(cache_path)
        if why:
            notes.append(why)
        if data is not None and data.get("settings") != settings:
            notes.append(f"{cache_path}: built with {data.get('settings')}, asked {settings}: rebuilt")
            data = None
        cached = (data or {}).get("folders", {})
    for old in sorted(set(cached) - set(abs_folders)):
        notes.append(f"{old}: {len(cached[old])} cached entries dropped (folder not indexed this time)")
    exclude = set()
    if cache_path is not None:
        exclude.add(os.path.abspath(cache_path))
    stats = {"files": 0, "read": 0, "reused": 0, "dropped": 0, "ok": 0, "empty": 0, "unusable": 0,
             "hidden_skipped": 0}
    stats["dropped"] = sum(len(cached[old]) for old in set(cached) - set(abs_folders))
    entries: list[IndexEntry] = []
    for folder in abs_folders:
        if targets[folder] is None:
            rels, hidden = _walk(folder, exclude)
        else:
            rels, hidden = sorted(targets[folder]), 0
        stats["hidden_skipped"] += hidden
        old = cached.get(folder, {})
        stats["dropped"] += len(set(old) - set(rels))
        for rel in rels:
            size, mtime_ns = _stat(os.path.join(folder, *rel.split("/")))
            prev = old.get(rel)
            if prev is not None and prev.get("size") == size and prev.get("mtime_ns") == mtime_ns:
                entry = _entry_from_json(folder, rel, prev)
                stats["reused"] += 1
            else:
                entry = _read_entry(folder, rel, size, mtime_ns, beams, piece_s, pad_m)
                stats["read"] += 1
            entries.append(entry)
            stats[entry.status] += 1
    stats["files"] = len(entries)
    index = AltimetryIndex(entries=entries, settings=settings, stats=stats, notes=notes, cache_path=cache_path)
    if cache_path is not None and (stats["read"] or stats["dropped"] or notes or not os.path.exists(cache_path)):
        save_index(index, cache_path)
    return index


def save_index(index: AltimetryIndex, cache_path: str) -> str:
    """The index as JSON at `cache_path` (atomically)."""
    folders: dict[str, dict] = {}
    for e in index.entries:
        folders.setdefault(e.folder, {})[e.path] = _entry_to_json(e)
    return write_json(cache_path, {"format": INDEX_FORMAT, "version": INDEX_VERSION, "settings": index.settings,
                                   "folders": folders}, allow_nan=False, indent=None)
