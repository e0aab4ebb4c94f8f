"""A scene's altimeter points: the freeboard tracks of the granules that can overlap it, collocated on the
grid its patches are cut from, with the count of what happened to every point.

`SceneAltimetry(folders, max_time_gap_h=...)` indexes the altimetry folders once (time span and region
per file, `altimetry.index`, cached as `<cache>` when given), then, called with a scene's geometry
(shape, tie points, validity, start time: `data.shards.downsampled_geometry`), opens only the granules
whose time span and region can overlap the scene, turns their tracks into freeboards of each kind
(`altimetry.kinds.freeboard_tracks`: ATL10 and radar freeboards as they are, ATL07 heights through a
local sea surface or refused), collocates them (`altimetry.collocate`) and returns
(`data.points.ScenePoints`, report). The object is small and picklable: conversion sends it to its
worker processes. The report (the scene sidecar's `altimetry`):

  files, tracks            granules opened, tracks of a freeboard kind in them
  points_read              points in those tracks (all kinds, refused tracks included)
  collocated               points kept on the scene (by kind in `by_kind`)
  outside                  centre (or most of the footprint) off the scene
  outside_time_window      measured more than max_time_gap_h from the SAR start
  on_land                  on land or SAR no-data
  refused                  {why: points}: bad quality flags, not a freeboard (ATL07 heights without a
                           lead, other heights), unreadable files (counted in files)
  notes                    the first lines of what the readers skipped (empty beams, refusals)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from seaice_jax.altimetry import kinds as fk
from seaice_jax.altimetry.collocate import collocate
from seaice_jax.altimetry.track import AltimetryFormatError, Swath, to_unix_seconds
from seaice_jax.data import points as pts

MAX_NOTES = 20


class SceneAltimetry:
    """Callable (scene geometry) -> (ScenePoints, report); see the module doc."""

    def __init__(self, folders: Sequence[str], *, max_time_gap_h: float, footprint_pixels: int = 8,
                 kinds: Sequence[str] = pts.FREEBOARD_KINDS, index_cache: str | None = None, progress=None):
        from seaice_jax.altimetry import index as ai

        for folder in folders:
            if not os.path.exists(folder):
                raise ValueError(f"--altimetry {folder}: no such file or folder")
        self.max_time_gap_s = float(max_time_gap_h) * 3600.0
        self.footprint_pixels = int(footprint_pixels)
        self.kinds = tuple(kinds)
        self.index = ai.build_index(list(folders), index_cache)
        if progress:
            progress(self.index.summary())

    def candidate_files(self, geometry) -> list[str]:
        from seaice_jax.altimetry import index as ai

        start = to_unix_seconds(geometry.start_time)
        tp = geometry.tie_points
        region = ai.region_of_points(np.asarray(tp.latitude).ravel(), np.asarray(tp.longitude).ravel(),
                                     margin_m=5_000.0)
        return ai.candidates(self.index, start - self.max_time_gap_s, start + self.max_time_gap_s, region)

    def tracks(self, files: Sequence[str], notes: list[str], refused: dict) -> tuple[list, list[str], int]:
        """(freeboard tracks, their kinds, points read) of the files."""
        from seaice_jax.altimetry.products import open_altimetry

        read, tracks, kinds = 0, [], []
        for path in files:
            try:
                items = open_altimetry(path, notes=notes)
            except AltimetryFormatError as e:
                refused["unreadable_file"] = refused.get("unreadable_file", 0) + 1
                notes.append(str(e))
                continue
            items = [t for t in items if not isinstance(t, Swath)]
            read += sum(len(t) for t in items)
            used = set()
            for kind, chosen in fk.tracks_by_kind(items, self.kinds, notes).items():
                for t in chosen:
                    tracks.append(t)
                    kinds.append(kind)
                    used.add(t.track_id)
            for t in items:
                if t.track_id not in used:
                    why = "not_freeboard" if fk.freeboard_kind(t) is None else "other_kind"
                    refused[why] = refused.get(why, 0) + len(t)
        return tracks, kinds, read

    def __call__(self, geometry) -> tuple[pts.ScenePoints, dict]:
        if geometry.tie_points is None or geometry.start_time is None:
            raise ValueError(f"{geometry.name}: no tie points or start time: cannot collocate altimetry")
        notes: list[str] = []
        refused: dict[str, int] = {}
        files = self.candidate_files(geometry)
        tracks, kinds, read = self.tracks(files, notes, refused)
        counts: dict[str, int] = {}
        colloc = collocate(geometry, tracks, self.max_time_gap_s, max_pixels=self.footprint_pixels, counts=counts)
        start = to_unix_seconds(geometry.start_time)
        points = (pts.from_collocation(colloc, tracks, kinds, start) if len(colloc)
                  else pts.ScenePoints.empty(geometry.shape, self.footprint_pixels))
        if counts.get("bad_quality"):
            refused["bad_quality"] = counts["bad_quality"]
        report = {
            "files": len(files), "tracks": len(tracks), "points_read": int(read),
            "collocated": int(len(points)),
            "by_kind": {k: int((points.kind == pts.kind_index(k)).sum()) for k in self.kinds},
            "outside": int(counts.get("outside", 0)), "outside_time_window": int(counts.get("outside_time_window", 0)),
            "on_land": int(counts.get("on_land", 0)), "refused": {k: int(v) for k, v in sorted(refused.items())},
            "notes": notes[:MAX_NOTES] + ([f"... and {len(notes) - MAX_NOTES} more"] if len(notes) > MAX_NOTES else []),
            "max_time_gap_h": self.max_time_gap_s / 3600.0,
        }
        return points, report
