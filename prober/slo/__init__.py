"""Service level objectives declared in the scenario file, and the Prometheus rules for them.

`model` holds the `slo:` block's models (imported by the scenario file's schema);
`rules` turns a loaded scenario file into recording rules and burn-rate alerts.
"""
