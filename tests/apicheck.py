"""Checks every API response the tests see against prober/http/openapi.yaml.

The document is the contract users code against, so the tests hold the server to it:
an undocumented status, content type or header, or a body off its schema, fails.
"""

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import aiohttp
import jsonschema
import yaml
from multidict import CIMultiDictProxy

SPEC: dict[str, Any] = yaml.safe_load(
    resources.files("prober.http").joinpath("openapi.yaml").read_text(encoding="utf-8")
)
_PATHS = [
    (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"), template)
    for template in SPEC["paths"]
]


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any


def template_for(path: str) -> str:
    for pattern, template in _PATHS:
        if pattern.match(path):
            return template
    raise AssertionError(f"{path} is not documented in openapi.yaml")


def check(method: str, path: str, reply: Reply) -> None:
    operation = SPEC["paths"][template_for(path)].get(method.lower())
    assert operation is not None, f"{method} {path} is not documented"
    documented = operation["responses"].get(str(reply.status))
    assert documented is not None, f"{method} {path} -> {reply.status} is not documented"
    for header in documented.get("headers", {}):
        assert header in reply.headers, f"{method} {path} -> {reply.status} lacks {header}"
    content_type = reply.headers.get("Content-Type", "").split(";")[0]
    assert content_type in documented["content"], f"undocumented content type {content_type}"
    schema = documented["content"][content_type].get("schema")
    if schema is not None:
        jsonschema.Draft202012Validator({**schema, "components": SPEC["components"]}).validate(
            reply.json
        )


class ApiClient:
    """Real HTTP to the server under test; every /api response is checked against the spec."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        async with self.session.request(method, self.base + path, **kwargs) as response:
            body = await response.read()
            is_json = response.content_type == "application/json"
            reply = Reply(
                response.status, response.headers, body, await response.json() if is_json else None
            )
        if path.startswith("/api/"):
            check(method, path.split("?")[0], reply)
        return reply

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("POST", path, **kwargs)
