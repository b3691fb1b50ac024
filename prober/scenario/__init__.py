"""What a scenario author touches: the declarative actions and the Python `step()` API."""
