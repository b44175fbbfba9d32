"""The dashboard at ``/``, in a real headless browser (Debian's chromium, selenium).

The page loads, asks for the token, shows the installed plugins with their state and
health, and a suspend from the page changes the state it shows (pushed by the event
WebSocket). The test takes a screenshot; with ACP_WRITE_SCREENSHOT=1 it becomes
docs/dashboard.png, the README's.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from test_server import ADMIN_TOKEN, Server, _start

from conftest import ROOT, sample


def _driver_path() -> str:
    found = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    assert Path(found).exists(), "chromium-driver is not installed (.ci/run installs it)"
    return found


@pytest.fixture(scope="module")
def dashboard_server(
    install_plugins: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    plugins = install_plugins(*(sample(n) for n in ("acp-echo", "acp-tools")))
    data = tmp_path_factory.mktemp("dashboard") / "data"
    running = _start(plugins, data, ACP_SERVER_TOKEN=ADMIN_TOKEN, ACP_HOST_ON_DEMAND="false")
    yield running
    running.process.terminate()
    running.process.wait(timeout=60)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,720", "--disable-gpu"):  # fmt: skip
        options.add_argument(argument)
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    if chrome:
        options.binary_location = chrome
    driver = webdriver.Chrome(service=Service(_driver_path()), options=options)
    yield driver
    driver.quit()


def _cell(browser: WebDriver, plugin_id: str, column: str) -> str:
    # the table is drawn again on every event: read it in one step, never a stale element
    script = "const c = document.querySelector(arguments[0]); return c ? c.textContent : null;"
    return str(browser.execute_script(script, f"#plugin-{plugin_id} .{column}"))


def _click(browser: WebDriver, plugin_id: str, action: str) -> None:
    """Click a row's button as a user would, again if the row was just redrawn."""
    for _ in range(20):
        try:
            row = browser.find_element(By.ID, f"plugin-{plugin_id}")
            row.find_element(By.CLASS_NAME, f"action-{action}").click()
            return
        except StaleElementReferenceException:
            time.sleep(0.05)
    raise AssertionError(f"the {action} button of {plugin_id} kept being redrawn")


def test_the_dashboard_shows_the_plugins_and_a_suspend_from_the_page_shows(
    dashboard_server: Server, browser: WebDriver, tmp_path: Path
) -> None:
    page = httpx.get(dashboard_server.url + "/")
    assert page.status_code == 200 and "<title>acp-plugins</title>" in page.text
    browser.get(dashboard_server.url + "/")
    browser.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
    browser.find_element(By.ID, "connect").click()
    wait = WebDriverWait(browser, 30)
    wait.until(lambda b: b.find_elements(By.ID, "plugin-tools"))
    wait.until(lambda b: b.find_element(By.ID, "status").text == "live")
    ids = browser.execute_script(
        "return [...document.querySelectorAll('#plugins tbody tr')].map(r => r.id)"
    )
    assert ids == ["plugin-echo", "plugin-tools"]
    assert _cell(browser, "tools", "state") == "active"
    wait.until(lambda b: _cell(b, "tools", "health") == "healthy")
    _click(browser, "tools", "suspend")
    wait.until(lambda b: _cell(b, "tools", "state") == "suspended")
    wait.until(lambda b: _cell(b, "tools", "health") == "suspended")
    status = httpx.get(dashboard_server.url + "/api/v1/plugins/tools/status",
                       headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()  # fmt: skip
    assert status["state"] == "suspended"
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#audit tbody tr"))  # the tail
    time.sleep(0.3)  # let the last repaint land before the picture
    picture = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(picture))
    assert picture.read_bytes().startswith(b"\x89PNG") and picture.stat().st_size > 10_000
    if os.environ.get("ACP_WRITE_SCREENSHOT"):  # the README's picture, made on request
        shutil.copyfile(picture, ROOT / "docs" / "dashboard.png")
    _click(browser, "tools", "resume")
    wait.until(lambda b: _cell(b, "tools", "state") == "active")


def test_a_wrong_token_is_said_on_the_page(dashboard_server: Server, browser: WebDriver) -> None:
    browser.get(dashboard_server.url + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(dashboard_server.url + "/")
    browser.find_element(By.ID, "token").send_keys("wrong")
    browser.find_element(By.ID, "connect").click()
    WebDriverWait(browser, 30).until(
        lambda b: "a valid token is needed" in b.find_element(By.ID, "status").text
    )


def test_with_the_read_token_the_page_shows_and_says_why_a_button_is_refused(
    dashboard_server: Server, browser: WebDriver
) -> None:
    read_token = (dashboard_server.data / "server.read-token").read_text().strip()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    # a log longer than a page (1,000 entries): the page shows its newest entries
    log = dashboard_server.data / "audit.jsonl"
    old = json.loads(log.read_text().splitlines()[0])
    with log.open("a") as file:
        for number in range(1200):
            file.write(json.dumps({**old, "detail": f"old entry {number}"}) + "\n")
    newest = httpx.get(dashboard_server.url + "/api/v1/audit", params={"last": 1},
                       headers=admin).json()["entries"][0]  # fmt: skip
    browser.get(dashboard_server.url + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(dashboard_server.url + "/")
    browser.find_element(By.ID, "token").send_keys(read_token)
    browser.find_element(By.ID, "connect").click()
    wait = WebDriverWait(browser, 30)
    wait.until(lambda b: b.find_element(By.ID, "status").text == "live")
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#audit tbody tr"))
    first_row = browser.execute_script(
        "return [...document.querySelectorAll('#audit tbody tr:first-child td')]"
        ".map(c => c.textContent)"
    )
    assert first_row == [newest["at"][:19], newest["plugin_id"], newest["action"],
                         newest["outcome"], newest["detail"]]  # fmt: skip
    _click(browser, "tools", "suspend")
    wait.until(lambda b: "needs the admin token" in b.find_element(By.ID, "status").text)
    assert _cell(browser, "tools", "state") == "active"
