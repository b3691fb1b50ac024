"""`python -m prober` and the `prober` command.

The early signal handlers (prober.early) are installed before prober.cli is imported:
that import takes a second or more, and a SIGHUP during it must not end `prober serve`.
"""

import sys

from prober import early


def main() -> int:
    early.install(sys.argv[1:2])
    from prober.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
