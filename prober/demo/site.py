"""The demo target: an app that signs users in through a separate "IdP" page.

It mirrors the shape of a real OIDC login (app -> IdP form -> POST -> redirect back
with a code -> session cookie -> app), so the demo scenarios and the tests exercise
multi-page navigation, form filling and redirects the way a production flow does.
"""

import html
import secrets
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

SESSION_COOKIE = "demo_session"
_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto}}
input,button{{display:block;margin:.5rem 0;padding:.4rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""

USERNAME_KEY = web.AppKey("username", str)
PASSWORD_KEY = web.AppKey("password", str)
CODES_KEY = web.AppKey("codes", set[str])
SESSIONS_KEY = web.AppKey("sessions", set[str])


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=_PAGE.format(title=html.escape(title), body=body),
        content_type="text/html",
        status=status,
    )


async def home(request: web.Request) -> web.Response:
    return _page("Demo app", '<p><a href="/idp/authorize?client_id=demo">Sign in with IdP</a></p>')


async def authorize(request: web.Request) -> web.Response:
    return _login_form()


def _login_form(message: str = "", status: int = 200) -> web.Response:
    notice = f'<p role="alert">{html.escape(message)}</p>' if message else ""
    return _page(
        "Demo IdP",
        notice + '<form method="post" action="/idp/login">'
        '<label>Login <input name="login" autocomplete="username"></label>'
        '<label>Password <input name="password" type="password"'
        ' autocomplete="current-password"></label>'
        '<button type="submit">Sign in</button></form>',
        status,
    )


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    app = request.app
    if form.get("login") != app[USERNAME_KEY] or form.get("password") != app[PASSWORD_KEY]:
        return _login_form("Invalid credentials", status=401)
    code = secrets.token_urlsafe(16)
    app[CODES_KEY].add(code)
    raise web.HTTPSeeOther(f"/callback?code={code}")


async def callback(request: web.Request) -> web.Response:
    code = request.query.get("code", "")
    if code not in request.app[CODES_KEY]:
        return _page("Demo app", "<p>Unknown authorization code</p>", status=400)
    request.app[CODES_KEY].discard(code)
    session = secrets.token_urlsafe(16)
    request.app[SESSIONS_KEY].add(session)
    response = web.HTTPSeeOther("/projects")
    response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Lax")
    raise response


async def projects(request: web.Request) -> web.Response:
    if request.cookies.get(SESSION_COOKIE) not in request.app[SESSIONS_KEY]:
        raise web.HTTPSeeOther("/")
    return _page(
        "Demo app",
        "<h2>Choose a project</h2><ul><li><a href='#'>payments</a></li>"
        "<li><a href='#'>search</a></li></ul>",
    )


def make_app(username: str = "demo", password: str = "demo-password") -> web.Application:
    """The demo app and its IdP on one server; credentials are what the scenarios must type."""
    app = web.Application()
    app[USERNAME_KEY] = username
    app[PASSWORD_KEY] = password
    app[CODES_KEY] = set()
    app[SESSIONS_KEY] = set()
    app.router.add_get("/", home)
    app.router.add_get("/idp/authorize", authorize)
    app.router.add_post("/idp/login", login)
    app.router.add_get("/callback", callback)
    app.router.add_get("/projects", projects)
    return app


@asynccontextmanager
async def serve_on_loopback(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """Serve `app` on 127.0.0.1 at a free port (yielded) until the block ends.

    The demo command, the tests' targets and the benchmarks' all need a real server
    on a port nothing else holds; the kernel picks it (port 0), so parallel runs never
    collide.
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()
