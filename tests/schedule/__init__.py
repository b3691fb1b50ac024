"""Tests of prober.schedule."""
