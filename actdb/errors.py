"""Errors raised by the actdb library.

The library raises; only the adapters (:mod:`actdb.cli`, :mod:`actdb.serve`) turn an
:class:`ActdbError` into a one-line message. Every message says what the user can do next, and
names the library's parameter it is about (``k``, ``where``, ``image_size``) and says so in
``param``, so that an adapter can name its own option instead (the CLI: ``-k``, ``--where``).

>>> str(StatsMissing())
'statistics not computed yet; run `actdb stats` (or db.space().stats())'
>>> UsageError("k must be at least 1, not 0", param="k").params
('k',)
"""

from __future__ import annotations

from collections.abc import Sequence


class _Named:
    """``param``: the library parameter (or parameters) the message names first, each at the
    start of one ``"; "``-separated part of the message."""

    def __init__(self, *args: object, param: str | Sequence[str] | None = None):
        super().__init__(*args)
        self.params: tuple[str, ...] = ((param,) if isinstance(param, str)
                                        else tuple(param or ()))


class ActdbError(_Named, Exception):
    """Base class of every error actdb raises on purpose."""

    exit_code = 1


class ActdbWarning(_Named, UserWarning):
    """actdb did something other than asked, and says so (e.g. fewer random classes than
    asked, because the store has fewer); the CLI prints it as one ``note:`` line."""


class UsageError(ActdbError):
    """An option or argument is invalid (unknown layer, bad shard spec, k < 1, ...)."""

    exit_code = 2


class DatasetError(ActdbError):
    """The dataset root is missing, empty, or laid out in a way actdb cannot read."""


class ImageError(ActdbError):
    """An image file cannot be decoded (truncated, not an image, too large, ...)."""


class WeightsUnavailable(ActdbError):
    """Model weights could not be loaded (no network for ImageNet weights, bad file)."""


class StoreError(ActdbError):
    """The store is missing, locked, or its files disagree with each other."""


class StoreMismatch(StoreError):
    """A model/layer/pool/weights/size differs from what the store was built with."""


class StoreDamaged(StoreError):
    """A file the catalog lists (a shard, the index) is missing or unreadable."""

    def __init__(self, what: str):
        super().__init__(f"store damaged: {what}; run `actdb check --repair`")


class StatsMissing(StoreError):
    """The store's class and pair statistics have not been computed."""

    def __init__(self, what: str = "statistics"):
        super().__init__(f"{what} not computed yet; run `actdb stats` (or db.space().stats())")


class IngestFailed(ActdbError):
    """An ingest stopped because of bad input under ``strict``."""


class QueryError(ActdbError):
    """A query cannot be answered (bad vector dim, unknown class, bad SQL, ...)."""


class NotFound(QueryError):
    """What a query names is not in the store (a stored image, or its file)."""


class Refused(QueryError):
    """A request the store will not answer (SQL beyond reading, a file outside its root)."""


class SqlRefused(Refused):
    """A SQL statement tries to do something the read-only SQL interface forbids."""


class SqlTimeout(QueryError):
    """A SQL statement ran past its time limit and was stopped."""
