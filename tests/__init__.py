"""prober's tests: one folder per package of prober/, end-to-end tests of `prober serve` here."""
