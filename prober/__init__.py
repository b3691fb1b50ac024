"""prober: browser-driven SLA checks exported as Prometheus metrics."""

from functools import cache


def __getattr__(name: str) -> str:
    """`prober.__version__`, looked up on first use, not at import.

    Every process imports this package (the CLI, each worker), and reading the installed
    distribution's metadata costs ~0.06 CPU-s a process; only `serve` (build info) and
    the OTLP exporter ever ask for the version.
    """
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'prober' has no attribute {name!r}")


@cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prober")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"
