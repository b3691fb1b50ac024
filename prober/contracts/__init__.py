"""What both processes agree on: scenario schema, worker protocol, run result.

Imported by the parent and by the worker alike, so nothing here imports Playwright,
prometheus-client or aiohttp, and nothing here imports another prober package.
"""
