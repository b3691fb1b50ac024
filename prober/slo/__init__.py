"""Service level objectives declared in the scenario file, and the Prometheus rules for them.

The `slo:` block's models are a contract (prober.contracts.slo); here, `rules` turns a
loaded scenario file into recording rules and burn-rate alerts, and `buckets` makes sure
every latency threshold is a histogram boundary.
"""
