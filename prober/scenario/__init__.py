"""What a script author touches: the Python `step()` API (prober.scenario.api)."""
