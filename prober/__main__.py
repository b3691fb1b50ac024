"""`python -m prober` and the `prober` command.

The early signal handlers (prober.early) are installed before prober.cli is imported:
that import takes a second or more, and a SIGHUP during it must not end `prober serve`.

Ctrl-C (SIGINT) that reaches Python as KeyboardInterrupt (in `prober run`, `check`, or
during start-up) ends with one line and exit code 130, the shell's convention for a
command interrupted by SIGINT, not a traceback. By then asyncio.run has cancelled the
run, and a cancelled run kills its worker's process tree (prober.supervise.runner).
`serve` handles SIGINT itself, as a graceful stop.
"""

import os
import signal
import sys

from prober import early

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 1


def main() -> int:
    early.install(sys.argv[1:2])
    try:
        from prober.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        # Interrupted already: a further Ctrl-C must not turn exit 130 into death by
        # SIGINT (an uncaught KeyboardInterrupt) halfway through saying so.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        name = " ".join(["prober", *sys.argv[1:2]])
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`prober run ... | head`): nothing to report, and the
        # interpreter's own flush at exit must not fail the same way with a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    raise SystemExit(main())
