"""The ``actdb`` command line (Typer): the frame in ``app``, the commands by what they do,
registered in the order ``actdb --help`` lists them.

>>> [c.callback.__name__ for c in app.registered_commands][:3]
['ingest', 'info', 'spaces']
"""

# isort: off
from actdb.cli import build, ask, models, show  # noqa: F401 - registers the commands
# isort: on
from actdb.cli.app import app, as_option_names, main

__all__ = ["app", "as_option_names", "main"]
