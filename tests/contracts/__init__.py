"""Tests of prober.contracts."""
