"""prober: browser-driven SLA checks exported as Prometheus metrics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("prober")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
