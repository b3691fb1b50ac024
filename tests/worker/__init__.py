"""Tests of prober.worker."""
