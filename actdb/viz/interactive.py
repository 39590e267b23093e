"""The interactive map's browser side: ``static/map.js`` (ours) drawing with plotly.js (the
copy the ``plotly`` Python package ships, never fetched from the network), and the map's
points as a compact payload for the HTML report.

>>> plotly_js().name, map_js().name
('plotly.min.js', 'map.js')
"""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path

import numpy as np

STATIC = Path(__file__).parent / "static"


@functools.cache
def plotly_js() -> Path:
    """plotly.min.js from the installed plotly package."""
    from importlib.resources import files

    from actdb.errors import UsageError

    try:
        path = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise UsageError("the interactive map needs plotly.js from the plotly package: "
                         "pip install plotly")
    return path


def map_js() -> Path:
    return STATIC / "map.js"


def encode_points(points, classes_first: list[str] | None = None) -> tuple[bytes, dict]:
    """A map's points (DataFrame: image_id, x, y, class_name) as one binary payload (image ids
    float64, x and y float32, class codes int32: about 20 bytes a point) and the JSON that
    describes it: ``classes`` by code, largest class first (after ``classes_first``), -1 for
    unlabelled points; ``layout``: each column's dtype and byte offset."""
    counts = points.class_name.value_counts()
    order = sorted(counts.index, key=lambda c: (-counts[c], c))
    if classes_first:  # e.g. the queries' classes, so that they get the first colours
        first = [c for c in dict.fromkeys(classes_first) if c in counts]  # each class once
        order = first + [c for c in order if c not in first]
    code = {c: i for i, c in enumerate(order)}
    parts = [points.image_id.to_numpy(np.float64), points.x.to_numpy(np.float32),
             points.y.to_numpy(np.float32),
             points.class_name.map(code).fillna(-1).to_numpy(np.int32)]
    layout, offset = [], 0
    for name, a in zip(("image_id", "x", "y", "class"), parts, strict=True):
        layout.append({"name": name, "dtype": a.dtype.name, "offset": offset})
        offset += a.nbytes
    meta = {"n": len(points), "classes": order, "layout": layout, "bytes": offset}
    return b"".join(a.tobytes() for a in parts), meta


def embedded_points(points, classes_first: list[str] | None = None) -> str:
    """:func:`encode_points` as one JSON document (the payload base64), for the report."""
    data, meta = encode_points(points, classes_first)
    return json.dumps({**meta, "data": base64.b64encode(data).decode()})
