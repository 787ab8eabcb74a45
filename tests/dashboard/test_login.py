"""The dashboard on a server with default settings (tokens required): the one-time login
link (``/login?code=...``, what `mcuprof demo` and `mcuprof serve` print) gives the browser an
HttpOnly, SameSite=Strict session cookie that opens the pages, the export links and the
dashboard's own writes; a cross-site page cannot use it to write."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from service.auth import SESSION_COOKIE, create_login_code, list_tokens
from service.db.engine import Database
from tests.service.conftest import MakeClient
from tests.service.helpers import SAMPLE_MODEL


@pytest.fixture
def browser(make_client: MakeClient) -> TestClient:
    """A browser on the default server (no redirects followed: we look at each step)."""
    client = make_client(auth=None)
    client.follow_redirects = False
    return client


def code(database: Database, **kwargs: timedelta) -> str:
    with database.transaction() as s:
        return create_login_code(s, **kwargs)


def test_login_link_sets_a_session_cookie_that_opens_the_dashboard(
        browser: TestClient, database: Database) -> None:
    assert "Sign in" in browser.get("/").text  # no cookie yet
    assert browser.get("/api/v1/jobs").status_code == 401
    link = code(database)
    r = browser.get(f"/login?code={link}&next=/jobs")
    assert r.status_code == 303 and r.headers["location"] == "/jobs"
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = browser.get("/")
    assert page.status_code == 200 and "Sign in" not in page.text and "Overview" in page.text
    assert browser.get("/jobs").status_code == 200
    assert browser.get("/api/v1/jobs").status_code == 200  # the export links work too
    with database.transaction(write=False) as s:
        assert [t.name[:8] for t in list_tokens(s)] == ["browser-"]  # a revocable session


def test_the_cookie_writes_from_the_dashboard_only(browser: TestClient,
                                                  database: Database) -> None:
    browser.get(f"/login?code={code(database)}")
    files = {"file": ("kws.tflite", SAMPLE_MODEL.read_bytes())}
    r = browser.post("/api/v1/models", files=files, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = browser.post("/api/v1/models", files=files, headers={"Origin": "http://testserver"})
    assert r.status_code == 201


def test_a_login_link_works_once_and_not_after_it_expires(browser: TestClient,
                                                          database: Database) -> None:
    link = code(database)
    assert browser.get(f"/login?code={link}").status_code == 303
    browser.cookies.clear()
    r = browser.get(f"/login?code={link}")
    assert r.status_code == 401 and "already used or has expired" in r.text
    assert "set-cookie" not in r.headers
    old = code(database, ttl=timedelta(seconds=-1))
    assert browser.get(f"/login?code={old}").status_code == 401
    assert browser.get("/login?code=mcl_guess").status_code == 401
    assert "Sign in" in browser.get("/").text


def test_login_link_never_redirects_off_site(browser: TestClient, database: Database) -> None:
    r = browser.get(f"/login?code={code(database)}&next=//evil.example/")
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_login_form_without_a_code(browser: TestClient) -> None:
    r = browser.get("/login")
    assert r.status_code == 200 and "Sign in" in r.text and "mcuprof demo" in r.text
