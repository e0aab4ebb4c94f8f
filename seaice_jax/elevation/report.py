"""The evaluate_elevation tables and figures (E.md, E_rmse_vs_tracks.png, E_rmse_vs_distance.png)."""

from __future__ import annotations

import numpy as np


def _fmt(x):
    return "—" if x is None else f"{100 * x:.1f}"


def markdown_table(result: dict) -> str:
    """Pooled figures per method in cm (r unitless), RMSE (400 m) against tracks per scene, RMSE against
    the distance to the nearest track, and the model's uncertainty calibration."""
    cols = ("rmse_80m", "rmse_400m", "mae_400m", "bias", "r", "loo_rmse", "swath_rmse")
    lines = ["| method | " + " | ".join(c + (" (cm)" if c != "r" else "") for c in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for m, row in result["pooled"]["methods"].items():
        vals = [("—" if row[c] is None else f"{row[c]:.2f}") if c == "r" else _fmt(row[c]) for c in cols]
        lines.append(f"| {m} | " + " | ".join(vals) + " |")
    ks = list(result["pooled"]["by_tracks"])
    lines += ["", "| method | " + " | ".join(f"RMSE 400 m, {k} tracks (cm)" for k in ks) + " |",
              "|---" * (len(ks) + 1) + "|"]
    for m in result["pooled"]["methods"]:
        lines.append(f"| {m} | " + " | ".join(_fmt(result["pooled"]["by_tracks"][k]["methods"][m]["rmse_400m"])
                                               for k in ks) + " |")
    bd = result.get("by_distance")
    if bd:
        names = list(bd["bins"])
        lines += ["", f"RMSE by distance to the nearest track ({bd['basis']}), cm:", "",
                  "| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for m in result["pooled"]["methods"]:
            lines.append(f"| {m} | " + " | ".join(_fmt(bd["bins"][b]["methods"].get(m)) for b in names) + " |")
        lines.append("| pixels / points | " + " | ".join(str(bd["bins"][b]["n"]) for b in names) + " |")
    u = result.get("uncertainty")
    if u and u.get("n_points"):
        lines += ["", f"Predicted uncertainty on {u['n_points']} held-out points: {u['within_1sigma']:.2f} within "
                      f"1 sigma, {u['within_2sigma']:.2f} within 2 (calibrated: 0.68, 0.95)."]
    return "\n".join(lines) + "\n"


def _save(fig, path: str) -> str:
    from seaice_jax import fileio

    try:
        fileio.write_atomically(lambda tmp: fig.savefig(tmp, format="png", dpi=100), path, ".png.part")
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def plot_rmse_vs_tracks(result: dict, path: str) -> str | None:
    """RMSE against the number of tracks per scene, one colour per method (400 m solid, 80 m dotted);
    only methods with a value (no 'model' line without a model), the legend beside the axes so it
    covers no line. None (nothing written) when no method has any value (e.g. scenes without truth)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [int(k) for k in result["pooled"]["by_tracks"]]
    lines = []
    for i, m in enumerate(result["pooled"]["methods"]):
        for res, style in (("rmse_400m", "-o"), ("rmse_80m", ":x")):
            ys = [result["pooled"]["by_tracks"][str(k)]["methods"][m][res] for k in ks]
            if all(y is None for y in ys):
                continue
            lines.append((ks, [np.nan if y is None else 100 * y for y in ys], style, f"C{i}", f"{m} {res[5:]}"))
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for xs, ys, style, colour, label in lines:
        ax.plot(xs, ys, style, color=colour, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("tracks per scene")
    ax.set_ylabel("freeboard RMSE vs truth (cm)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def plot_rmse_vs_distance(result: dict, path: str) -> str | None:
    """RMSE (cm) of each method in the distance bins, one line per method with a value; None (nothing
    written) when no method has any."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bd = result["by_distance"]
    names = list(bd["bins"])
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    x = np.arange(len(names))
    drawn = 0
    for i, m in enumerate(result["pooled"]["methods"]):
        ys = [bd["bins"][b]["methods"].get(m) for b in names]
        if all(y is None for y in ys):
            continue
        drawn += 1
        ax.plot(x, [np.nan if y is None else 100 * y for y in ys], "-o", color=f"C{i}", label=m)
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xticks(x, names)
    ax.set_xlabel("distance to the nearest input track")
    ax.set_ylabel("freeboard RMSE (cm)")
    ax.set_title(f"basis: {bd['basis']}", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    fig.tight_layout()
    return _save(fig, path)
