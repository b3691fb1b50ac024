"""The parent's side of a run: start workers, stream their events, kill and reap them.

The parent never imports Playwright; a worker is only a process speaking the protocol.
"""
