"""Tests of deploy/, dashboards/ and the Dockerfile: what ships beside the code."""
