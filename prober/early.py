"""Signals that arrive before `prober serve` has an event loop to handle them.

SIGHUP's default action ends the process, and importing prober's dependencies alone takes
a second or more on a busy node: a SIGHUP sent that soon after start (an operator, a
ConfigMap reloader sidecar) killed `prober serve`. So `prober.__main__` installs this
module's handler before importing anything else; `serve` replaces it with its own once
its loop runs, and a hangup noted in between becomes a reload, since the file may have
changed after it was read.
"""

import signal
from collections.abc import Sequence
from types import FrameType

# The verbs that live on and reload on SIGHUP; the others keep the default (a hangup ends
# a `prober run` in a closed terminal, as it should).
LONG_RUNNING_VERBS = ("serve", "demo")
_hangup_pending = False


def install(verb: Sequence[str]) -> None:
    """Note SIGHUP instead of dying, for the long-running verbs (`verb`: argv[1:2])."""
    if list(verb)[:1] and verb[0] in LONG_RUNNING_VERBS:
        signal.signal(signal.SIGHUP, _note_hangup)


def _note_hangup(signum: int, frame: FrameType | None) -> None:
    global _hangup_pending
    _hangup_pending = True


def take_hangup() -> bool:
    """Whether a SIGHUP arrived before serve took over; clears it."""
    global _hangup_pending
    pending, _hangup_pending = _hangup_pending, False
    return pending
