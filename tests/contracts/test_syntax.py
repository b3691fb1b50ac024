"""Selectors and URLs no browser accepts, decided without one (prober.contracts.syntax)."""

import pytest

from prober.contracts.syntax import check_selector, check_url

GOOD_SELECTORS = [
    "text=Sign in with IdP",
    'text="Sign in"',
    "'Sign in'",
    "input[name=login]",
    'role=button[name="Sign in"]',
    "button[type=submit]",
    "#main > .item:nth-child(2)",
    "//div[@id='x']",
    "xpath=//a",
    "css=div >> text=Next",
    "data-testid=submit",
    "id=login",
    "div >> nth=0",
    "button >> visible=true",
    'text=a >> b "quoted >> not a split"',
    "*css=form >> input",
]


@pytest.mark.parametrize("selector", GOOD_SELECTORS)
def test_selectors_playwright_accepts_pass(selector: str) -> None:
    assert check_selector(selector) == selector


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("", "selector is empty"),
        ("   ", "selector is empty"),
        ("nosuchengine=foo", "unknown selector engine 'nosuchengine'"),
        ("div:has-text=x", "unknown selector engine 'div:has-text'"),
        ("[[[[>>", "CSS '[[[[' cannot parse: '[' is never closed"),
        ("div >> ", "has an empty part around '>>'"),
        (">>", "selector is empty"),
        ("a[href='x]", "a ' quote is never closed"),
        ("div)", "')' closes nothing"),
        ("div >", "it ends in a combinator"),
        ("xpath=//div[", "XPath '//div[' cannot parse"),
        ("role=", "selector part 'role=' has nothing after the '='"),
        ("div >> nth=first", "'nth=first' needs an integer index"),
        ("div >> visible=maybe", "'visible=maybe' must be true or false"),
    ],
)
def test_selectors_no_browser_accepts_fail(selector: str, message: str) -> None:
    with pytest.raises(ValueError, match=None) as raised:
        check_selector(selector)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "https://app.example/login?next=/x",
        "HTTPS://Host/",
        "data:text/html,<p>test page</p>",
        "about:blank",
        "https://app.example/login?password=s3cr&t pa%ss+wörd/?=",
        "http://probe+name@example.com:p@ss w0rd!@app.example/",  # a password in userinfo
    ],
)
def test_absolute_http_urls_pass(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "not a url at all",
        "/relative/path",
        "//host/path",
        "ftp://files.example/",
        "http://",
        "http://[::1",
        "http://host:99999/",
        "http://host name/",
        "http://user:pw@host name/",
        "javascript:alert(1)",
    ],
)
def test_urls_that_cannot_be_navigated_fail_without_quoting_them(url: str) -> None:
    with pytest.raises(ValueError, match=None) as raised:
        check_url(url)
    assert url.strip() not in str(raised.value)
