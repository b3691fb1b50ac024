"""A two-origin SSO target for tests: an app and an IdP on different ports, with a
password and a TOTP second factor the IdP verifies with tests/totp_reference.py."""

import asyncio
import html
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.totp_reference import key_of, reference_code


@dataclass
class SsoSite:
    user: str
    password: str
    seed: str
    app_url: str = ""
    idp_url: str = ""
    # Server-side delay of the IdP's sign-in page, seconds.
    idp_delay: float = 0.0
    # Every (login, password, otp) the IdP received, to check what the browser sent.
    submitted: list[tuple[str, str, str]] = field(default_factory=list)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=f"<!doctype html><title>{title}</title><h1>{title}</h1>{body}",
        content_type="text/html",
        status=status,
    )


def _app(site: SsoSite) -> web.Application:
    async def home(request: web.Request) -> web.Response:
        link = f"{site.idp_url}/authorize?return={site.app_url}/callback"
        return _page("App", f'<a href="{html.escape(link)}">Sign in</a>')

    async def callback(request: web.Request) -> web.Response:
        return _page("Choose a project", "<p>welcome</p>")

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/callback", callback)
    return app


def _idp(site: SsoSite) -> web.Application:
    async def authorize(request: web.Request) -> web.Response:
        await asyncio.sleep(site.idp_delay)
        back = html.escape(request.query.get("return", ""))
        return _page(
            "Corporate IdP",
            f'<form method="post" action="/login?return={back}">'
            '<input name="login"><input name="password" type="password">'
            '<input name="otp" inputmode="numeric" autocomplete="one-time-code">'
            '<button type="submit">Sign in</button></form>',
        )

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        login, password, otp = (str(form.get(k, "")) for k in ("login", "password", "otp"))
        site.submitted.append((login, password, otp))
        now = time.time()
        # The current window or the one before, as IdPs accept (RFC 6238 section 5.2).
        valid = {reference_code(key_of(site.seed), now - lag) for lag in (0, 30)}
        if (login, password) != (site.user, site.password):
            return _page("Sign-in failed", "<p>wrong password</p>", 401)
        if otp not in valid:
            return _page("Sign-in failed", "<p>invalid code</p>", 401)
        back = html.escape(request.query.get("return", ""))
        return _page("Signed in", f'<a href="{back}">Continue</a>')

    app = web.Application()
    app.router.add_get("/authorize", authorize)
    app.router.add_post("/login", login)
    return app


@asynccontextmanager
async def serve_sso(site: SsoSite) -> AsyncIterator[SsoSite]:
    runners = []
    try:
        for attr, app in (("app_url", _app(site)), ("idp_url", _idp(site))):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            tcp = web.TCPSite(runner, "127.0.0.1", 0)
            await tcp.start()
            runners.append(runner)
            port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            setattr(site, attr, f"http://127.0.0.1:{port}")
        yield site
    finally:
        for runner in runners:
            await runner.cleanup()


SSO_SCENARIO = """\
scenarios:
  - name: sso
    interval: 60s
    timeout: 40s
    steps:
      - name: app_page_loaded
        actions:
          - goto: "${{public:APP_URL}}/"
          - wait_for: "text=Sign in"
      - name: idp_page_loaded
        component: idp
        actions:
          - click: "text=Sign in"
          - wait_for: "input[name=login]"
      - name: idp_signed_in
        component: idp
        actions:
          - fill: {{selector: "input[name=login]", value: "${{PROBE_USER}}"}}
          - fill: {{selector: "input[name=password]", value: "{password}"}}
          - fill_totp: {{selector: "input[name=otp]", secret: "${{MFA_SEED}}", margin: {margin}}}
          - click: "button[type=submit]"
          - expect_text: {{selector: "h1", text: "Signed in"}}
      - name: back_in_app
        actions:
          - click: "text=Continue"
          - expect_text: {{selector: "h1", text: "Choose a project"}}
"""
