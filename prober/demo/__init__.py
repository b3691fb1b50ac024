"""A bundled demo: a small app with an OAuth-style sign-in through an IdP, and scenarios for it."""
