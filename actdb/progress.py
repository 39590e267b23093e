"""Progress of long calls (ingest, stats, compare, map, atlas): a bar in a Jupyter notebook,
nothing in a script unless asked. The library prints nothing else on its own.

``progress`` as the face methods take it: a callable gets every report itself; ``True`` asks
for a bar (tqdm's: a widget in a notebook, a line on stderr elsewhere); ``False`` for none;
``None`` (the default) shows a bar only when the caller runs in a Jupyter kernel.

>>> with progress_for(None, "stats") as report:  # a script (no kernel): nothing
...     report is None
True
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

#: What a long call reports to: ``(done, total, description=None)``, or one ``str`` (the
#: stage a call without a count is at, as ``map`` and ``plot`` report).
Report = Callable[..., None]


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel's (IPython with a kernel attached)."""
    ipython = sys.modules.get("IPython")  # never imported here: a script has none
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


@contextlib.contextmanager
def progress_for(progress: bool | Report | None, name: str) -> Iterator[Report | None]:
    """The callback a long call reports to, as ``progress`` asks (see the module); the bar,
    if any, is closed when the call ends."""
    if callable(progress):
        yield progress
        return
    if progress is False or (progress is None and not in_notebook()):
        yield None
        return
    bars = []  # made at the first report: a call with nothing to do shows nothing

    def report(done, total: int | None = None, description: str | None = None) -> None:
        if not bars:
            from tqdm.auto import tqdm

            bars.append(tqdm(desc=name, total=None))
        bar = bars[0]
        if isinstance(done, str):  # a stage, no count
            bar.set_description_str(f"{name}: {done}")
            return
        if total is not None and bar.total != total:
            bar.total = total
        if description:
            bar.set_description_str(f"{name}: {description}")
        bar.update(done - bar.n)

    try:
        yield report
    finally:
        for bar in bars:
            bar.close()
