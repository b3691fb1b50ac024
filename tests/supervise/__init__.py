"""Tests of prober.supervise."""
