"""Where finished runs go: Prometheus metrics and the run history."""
