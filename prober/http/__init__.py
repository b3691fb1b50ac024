"""The HTTP surface of `prober serve`: /metrics, health, the JSON API, the status page."""
