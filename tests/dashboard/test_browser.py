"""The dashboard in headless Chromium (Debian's ``chromium`` driven by ``chromium-driver``
through Selenium): a real server with measurements, the device page's plots drawn by the
served plotly.js (traces, points and fitted lines in the DOM), screenshots kept in
``build/screenshots/``. Skipped, with the reason, only where no Chromium is installed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.auth import create_login_code
from service.db.engine import Database, make_engine
from tests.conftest import REPO_ROOT
from tests.dashboard import seed
from tests.dashboard.conftest import DEVICES, seeded_server
from tests.service_agent.conftest import ThreadServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
PAGE_TIMEOUT_S = 30.0
WINDOW = (1400, 2200)  # pixels: tall enough for the plots and the fits table

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason=f"no Chromium for the browser test: {CHROMIUM} or {CHROMEDRIVER} is missing "
           f"(apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(browser: Any, url: str) -> str:
    """Load ``url`` and wait until the page script says every figure is drawn."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, PAGE_TIMEOUT_S).until(
        lambda d: d.execute_script("return document.body.dataset.plots || ''"))
    state: str = browser.execute_script("return document.body.dataset.plots")
    return state


def screenshot(browser: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    assert browser.save_screenshot(str(path)), path
    assert path.stat().st_size > 10_000  # a blank page compresses to almost nothing
    return path


def test_device_page_draws_scatter_lines_and_residuals(browser: Any,
                                                       served: ThreadServer) -> None:
    assert open_page(browser, f"{served.url}/device/{DEVICES[0]}") == "ready"
    # Plotly's own view of the figure: one marker trace per backbone (+ untagged), one line
    # per fitted backbone, with the fit's r² and ±10 % accuracy in its legend name.
    data = browser.execute_script(
        "return document.getElementById('fig-scatter').data.map(t => "
        "({mode: t.mode, name: t.name, n: t.x.length}))")
    markers = [t for t in data if t["mode"] == "markers"]
    lines = [t for t in data if t["mode"] == "lines"]
    assert {t["name"].split(" ")[0] for t in markers} == {"ad", "kws", "vww", "(no"}
    assert sum(t["n"] for t in markers) == 38
    assert len(lines) == 3 and all("r² 0." in t["name"] and "±10%" in t["name"]
                                   for t in lines), lines
    # What was drawn: SVG traces with marker points and line paths.
    dom = browser.execute_script("""
        const gd = document.getElementById('fig-scatter');
        const traces = gd.querySelectorAll('.scatterlayer .trace');
        return {traces: traces.length,
                points: gd.querySelectorAll('.scatterlayer .trace .points path.point').length,
                lines: Array.from(gd.querySelectorAll('.scatterlayer .trace path.js-line'))
                            .filter(p => (p.getAttribute('d') || '').length > 5).length,
                legend: Array.from(gd.querySelectorAll('.legend .legendtext'))
                             .map(t => t.textContent)};""")
    assert dom["traces"] == len(data)
    assert dom["points"] == 38
    assert dom["lines"] == 3
    assert any("r² 0." in text for text in dom["legend"]), dom["legend"]
    residual_points = browser.execute_script(
        "return document.querySelectorAll('#fig-residuals .scatterlayer .points path.point')"
        ".length")
    assert residual_points == 36  # the tagged measurements, each against its line
    # No CDN: every script the page loaded came from this server.
    sources = browser.execute_script(
        "return Array.from(document.scripts).map(s => s.src).filter(s => s)")
    assert sources and all(s.startswith(served.url) for s in sources), sources
    screenshot(browser, "device.png")


def test_model_and_overview_pages_draw(browser: Any, served: ThreadServer) -> None:
    assert open_page(browser, f"{served.url}/model/1") == "ready"
    traces = browser.execute_script("""
        return ['latency', 'cycles', 'mac_per_cycle', 'memory'].map(id =>
            document.getElementById('fig-' + id).querySelectorAll(
                '.scatterlayer .trace, .barlayer .trace').length);""")
    # latency: measured + op-count line + per-layer model; cycles and MAC/cycle: one bar
    # trace per device; memory: arena and plan bars.
    assert traces == [3, 2, 2, 2], traces
    bars = browser.execute_script(
        "return document.querySelectorAll('#fig-cycles .barlayer .point').length")
    assert bars > 10
    screenshot(browser, "model.png")
    assert open_page(browser, f"{served.url}/") == "ready"
    assert "virtual:nucleo-f746zg" in browser.page_source
    screenshot(browser, "overview.png")


@pytest.fixture
def signed_out(tmp_path: Path, sample: list[seed.SyntheticModel]) -> Iterator[ThreadServer]:
    """A real server with the default auth (tokens required) over a seeded database."""
    with seeded_server(tmp_path, sample, auth="on") as server:
        yield server


def test_the_login_link_signs_chromium_in(browser: Any, signed_out: ThreadServer) -> None:
    """The link `mcuprof demo` prints: Chromium keeps the SameSite=Strict cookie across the
    redirect and the dashboard opens, with no token typed; script cannot read the cookie."""
    browser.delete_all_cookies()
    browser.get(f"{signed_out.url}/")
    assert "Sign in" in browser.page_source
    db = Database(make_engine(signed_out.settings.database_url))
    try:
        with db.transaction() as s:
            code = create_login_code(s)
    finally:
        db.dispose()
    browser.get(f"{signed_out.url}/login?code={code}&next=/device/{DEVICES[0]}")
    assert browser.current_url == f"{signed_out.url}/device/{DEVICES[0]}"
    assert open_page(browser, browser.current_url) == "ready"
    assert "Sign in" not in browser.page_source
    [cookie] = browser.get_cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""
    browser.delete_all_cookies()
