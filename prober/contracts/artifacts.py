"""Where failure artifacts live on disk: the layout the worker writes and the parent reads.

Layout (a contract: the HTTP API serves `GET /api/runs/{id}/artifacts/{name}` from it):

    {data_dir}/artifacts/{run_id}-{kind}.{ext}      e.g. 20261124T070512Z-3f9a1c2b-trace.zip
    {data_dir}/artifacts/.staging/{run_id}/          the worker's scratch space for one run
"""

from pathlib import Path

STAGING = ".staging"


def artifact_name(run_id: str, kind: str, ext: str) -> str:
    return f"{run_id}-{kind}.{ext}"


def staging_dir(directory: Path, run_id: str) -> Path:
    return directory / STAGING / run_id
