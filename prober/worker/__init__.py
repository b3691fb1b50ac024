"""The worker subprocess (`python -m prober.worker`): Playwright, the page, one run.

It imports the contracts and the script API (prober.scenario), never the parent's
packages: what it knows of the parent arrives as a spec on stdin.
"""
