"""Tests of prober.record."""
