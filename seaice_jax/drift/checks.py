"""The ranges of DriftConfig's numbers, checked when a config is made (`DriftConfig.__post_init__`).

A 0 grid step used to end in a ZeroDivisionError and a negative template in a JAX gather error deep in
the matching; now a number out of range is a `DriftConfigError` naming the field (launch/drift.py
turns the field into its flag: `--grid-step-km must be a number > 0, got 0`).
"""

from __future__ import annotations

from seaice_jax.cli import check_number


class DriftConfigError(ValueError):
    """A DriftConfig number out of range; `field` names it (launch/drift.py: the flag)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


# field: (integer, minimum, above, maximum) of every number of DriftConfig
FIELD_RANGES = {
    "pixel_spacing_m": (False, None, 0.0, None), "grid_step_km": (False, None, 0.0, None),
    "template_km": (False, None, 0.0, None), "search_border_km": (False, None, 0.0, None),
    "rotations_deg": (False, -45.0, None, 45.0), "presmooth_px": (False, 0.0, None, None),
    "coarse_factor": (True, 1, None, None), "coarse_grid_step_km": (False, None, 0.0, None),
    "coarse_template_km": (False, None, 0.0, None), "max_drift_km": (False, None, 0.0, None),
    "min_mcc": (False, -1.0, None, 1.0), "min_quality": (False, 0.0, None, None),
    "coarse_min_mcc": (False, -1.0, None, 1.0), "min_phase_snr": (False, 0.0, None, None),
    "outlier_px": (False, None, 0.0, None), "batch_size": (True, 1, None, None),
    "nominal_uncertainty_m": (False, 0.0, None, None),
}


def check_config(config) -> None:
    """DriftConfigError naming the field of a number out of range (a 0 grid step divides by zero,
    a negative template fails deep inside JAX), or of a template too small in pixels."""
    for name, (integer, minimum, above, maximum) in FIELD_RANGES.items():
        value = getattr(config, name)
        values = value if name == "rotations_deg" else (value,)
        if name == "rotations_deg" and not values:
            raise DriftConfigError(name, "must hold at least one angle")
        for v in values:
            try:
                check_number(v, "", minimum, above=above, maximum=maximum, integer=integer)
            except ValueError as e:
                raise DriftConfigError(name, str(e).strip()) from None
    for name, factor in (("template_km", 1), ("coarse_template_km", config.coarse_factor)):
        if config.odd_px(getattr(config, name), factor) < 3:
            smallest = 3 * factor * config.pixel_spacing_m / 1000.0
            raise DriftConfigError(name, f"must span at least 3 pixels ({smallest:g} km at "
                                         f"{config.pixel_spacing_m * factor:g} m), got {getattr(config, name)!r}")
