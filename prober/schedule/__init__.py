"""When runs happen: one loop per scenario, retries, live reload, sharding."""
