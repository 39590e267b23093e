"""A stored map in a notebook cell, live: an anywidget (JupyterLab, Notebook 7, VS Code) that
draws the map as the page does (``static/map.js`` on plotly.js, both sent by the kernel), with
the queries placed, a thumbnail and class on hover (the kernel answers; nothing goes to a
network), and a lasso or box selection that comes back as image ids.

Most callers show a :class:`~actdb.viz.maps.StoredMap` (``space.map(queries=...)``) and read
``m.selected``; this module is imported only then (anywidget, ipywidgets).
"""

from __future__ import annotations

from collections.abc import Callable

from actdb.errors import UsageError

try:
    import anywidget
    import traitlets
except ModuleNotFoundError as e:  # an optional extra: the rest of actdb works without it
    raise UsageError("a live map in a notebook needs anywidget: "
                     "pip install 'actdb[notebook]'") from e

from actdb.viz.interactive import STATIC, encode_points, map_js, plotly_js
from actdb.viz.thumbs import data_uri


class MapWidget(anywidget.AnyWidget):
    """The map's points (the binary payload of ``encode_points``), the queries placed and
    the classes coloured first; ``selected_ids`` is what the front-end's selection holds."""

    _esm = STATIC / "widget.js"
    _plotly = traitlets.Unicode().tag(sync=True)
    _map_js = traitlets.Unicode().tag(sync=True)
    points = traitlets.Bytes().tag(sync=True)
    meta = traitlets.Dict().tag(sync=True)
    queries = traitlets.List().tag(sync=True)  # [{name, x, y}]
    top = traitlets.List().tag(sync=True)  # class names coloured first
    selected_ids = traitlets.List(traitlets.Int()).tag(sync=True)

    def __init__(self, m, placed=None, thumbnail: Callable[[int], bytes] | None = None):
        """``m``: a StoredMap; ``placed``: its Placement of the queries; ``thumbnail``:
        JPEG bytes of a stored image by id, for hovers."""
        queries = [] if placed is None else placed.coords.to_dict("records")
        near = _nearest_classes(m, placed)
        data, meta = encode_points(m.points, near)
        super().__init__(_plotly=plotly_js().read_text(encoding="utf-8"),
                         _map_js=map_js().read_text(encoding="utf-8"), points=data,
                         meta={**meta, "method": m.method, "map_id": m.map_id},
                         queries=queries, top=near)
        self._thumbnail = thumbnail
        self._ids = set(m.points.image_id.tolist())
        self.on_msg(self._answer)

    def _answer(self, _widget, content: dict, _buffers) -> None:
        """A hover asks for a point's thumbnail; only the map's own images are answered."""
        image_id = content.get("image_id") if isinstance(content, dict) else None
        if (content.get("kind") != "thumbnail" or self._thumbnail is None
                or image_id not in self._ids):
            return
        self.send({"kind": "thumbnail", "image_id": image_id,
                   "uri": data_uri(self._thumbnail(image_id), "image/jpeg")})


def _nearest_classes(m, placed, n: int = 10) -> list[str]:
    """The classes of the first query's 50 nearest map points (at most ``n``, nearest
    first): the classes the map colours first."""
    import numpy as np

    if placed is None or placed.distances is None:
        return []
    order = np.argsort(placed.distances[0], kind="stable")[:50]
    return list(dict.fromkeys(m.points.class_name.iloc[order].dropna()))[:n]
