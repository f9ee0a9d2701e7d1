"""Pictures for check runs, drawn with matplotlib's Agg backend (no display, thread-safe per
figure): the training loss curve a `train` check run shows."""

from __future__ import annotations

import io
from collections.abc import Sequence

#: Pixels of the picture (GitHub scales it to the check run's width).
WIDTH, HEIGHT, DPI = 800, 400, 100


def loss_curve_png(points: Sequence[tuple[int, float]], title: str = "Training loss") -> bytes:
    """A PNG of loss against step; with no points, an empty chart saying so. Builds its own
    `Figure` (not pyplot's global state), so concurrent calls in threads are safe."""
    # Imported here, not at module level: matplotlib with numpy and PIL is ~40 MB that an
    # idle worker would carry (tests/test_worker_footprint.py); only a train job draws.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    FigureCanvasAgg(figure)  # attaches the Agg canvas: no GUI backend is ever loaded
    axes = figure.add_subplot()
    if points:
        axes.plot([p[0] for p in points], [p[1] for p in points], color="#1f6feb", linewidth=1.5)
    else:
        axes.text(0.5, 0.5, "no loss reported yet", ha="center", va="center")
    axes.set_title(title)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
