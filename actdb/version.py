"""The installed version of actdb, from the package metadata (the one place it is defined is
pyproject.toml).

>>> isinstance(__version__, str)
True
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("actdb")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
