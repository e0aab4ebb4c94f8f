"""Synthetic AI4Arctic scenes with pixel-level ice truth, written in the real products' layouts.

A scene is built in five steps, all from one seeded numpy generator (same seed -> same arrays):

1. `surface`: surface truth on the SAR grid: a smooth large-scale concentration field C (an ice edge
   plus ~12 km blobs) decides where ice is likely; multi-scale Gaussian random fields thresholded at
   the (1 - C) quantile make the floes (summer: small fragmented floes, winter: big floes); zero-level
   sets of smooth fields cut leads. Winter leads are mostly refrozen: they hold new / young ice and
   count as ICE in `ice_truth` (and in the chart's CT); only open leads are water. Summer ice
   carries melt ponds, ice in the truth but water-like to the sensors. A land blob at one edge
   (most scenes), and in some winter scenes a fast-ice band along it.
2. `chart`: polygons much larger than floes (warped Voronoi cells, split along the open-water edge),
   one SIGRID row each; CT is the polygon's true ice fraction rounded to the SIGRID codes.
3. `sar`: HH / HV in dB from per-surface means with incidence-angle slopes, wind-roughened water,
   gamma speckle, an HV noise floor, a jagged no-data swath border.
4. `radiometer`: AMSR2 brightness temperatures mixed from the surface fractions of each 2 km cell's
   own block (floor(H / f) whole blocks), blurred by each frequency's footprint; smooth ERA5 fields.
5. `dataset` / `layout`: the real layouts (dataset.py says what each holds), file names, the test
   split's `_prep.nc` + `_prep_reference.nc` pair, writing.

Extras real files lack: the variable `ice_truth` and the attributes `synthetic_*`; the reader uses
`ice_truth` when present but never detects anything from it.
"""

from seaice_jax.synthetic.chart import (
    Chart,
    chart_rasters,
    concentration_code,
    make_chart,
    polygon_code_lines,
)
from seaice_jax.synthetic.dataset import SYNTHETIC_FILE_ATTR, raw_dataset, rtt_dataset
from seaice_jax.synthetic.layout import (
    CHART_REGIONS,
    NUM_TIEPOINTS,
    SPLITS,
    chart_region,
    default_start_time,
    resolve_service,
    scene_file_name,
    scene_seed,
    split_test_reference,
    synthesize_scene,
    write_independent_scenes,
    write_scene,
)
from seaice_jax.synthetic.radiometer import amsr2_fields, block_mean, era5_fields
from seaice_jax.synthetic.sar import incidence_angle, sar_backscatter, swath_no_data
from seaice_jax.synthetic.surface import (
    CONSOLIDATED_SURFACES,
    FYI,
    ICE_SURFACES,
    LAND,
    NEW_ICE,
    NUM_SURFACES,
    OLD_ICE,
    PRODUCTS,
    SEASON_PARAMS,
    SEASONS,
    SERVICES,
    THIN_FYI,
    TRUTH_ICE,
    TRUTH_LAND,
    TRUTH_WATER,
    WATER,
    YOUNG_ICE,
    SeasonParams,
    Surface,
    distance_zone,
    gaussian_random_field,
    make_surface,
)

__all__ = [
    "CHART_REGIONS", "CONSOLIDATED_SURFACES", "Chart", "FYI", "ICE_SURFACES", "LAND", "NEW_ICE",
    "NUM_SURFACES", "NUM_TIEPOINTS", "OLD_ICE", "PRODUCTS", "SEASONS", "SEASON_PARAMS", "SERVICES",
    "SPLITS", "SYNTHETIC_FILE_ATTR", "SeasonParams", "Surface", "THIN_FYI", "TRUTH_ICE",
    "TRUTH_LAND", "TRUTH_WATER", "WATER", "YOUNG_ICE", "amsr2_fields", "block_mean", "chart_rasters",
    "chart_region", "concentration_code", "default_start_time", "distance_zone", "era5_fields",
    "gaussian_random_field", "incidence_angle", "make_chart", "make_surface", "polygon_code_lines",
    "raw_dataset", "resolve_service", "rtt_dataset", "sar_backscatter", "scene_file_name",
    "scene_seed", "split_test_reference", "swath_no_data", "synthesize_scene", "write_scene",
    "write_synthetic_scenes",
]


def write_synthetic_scenes(out_dir: str, num_scenes: int, product: str, season: str, size: tuple[int, int],
                           seed: int, *, sequence: bool = False, **kw) -> list[str]:
    """Write `num_scenes` synthetic scenes into out_dir (layout.write_independent_scenes), or with
    `sequence` one ice field on consecutive days moved by a known drift, the true drift written
    beside them (sequence.write_sequence). Returns the scene paths written."""
    if sequence:
        from seaice_jax.synthetic.sequence import write_sequence

        return write_sequence(out_dir, num_scenes, product, season, size, seed, **kw)
    return write_independent_scenes(out_dir, num_scenes, product, season, size, seed, **kw)
