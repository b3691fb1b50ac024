"""Tests of prober.http."""
