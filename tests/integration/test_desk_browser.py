"""The desk in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`, driven by
Selenium) against `risk desk` under gunicorn. An analyst signs in from the keyboard, opens the queue, filters
it, opens a case, assigns it, resolves it as confirmed fraud, sees the queue shrink and the outcome in the
quality figures. Screenshots of the queue and the case page are saved in the test's own directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from shared.decisions import DecisionStore
from tests.fixtures.services import free_port, service_environment
from tests.unit.test_desk import KEYS, desk_settings, fraud_decision

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
NAVIGATION_SECONDS = 30  # how long a posted form may take to bring its next page on a loaded machine


@pytest.fixture
def desk_url(tmp_path: Path) -> Iterator[str]:
    """`risk desk` (gunicorn, 2 workers) over a store of four fraud decisions, three of them queued."""
    settings = desk_settings(tmp_path)
    now = datetime.now(UTC)
    store = DecisionStore(settings.decisions_url)
    store.record(
        [
            fraud_decision(1, "review", 0.41, at=now - timedelta(hours=3)),
            fraud_decision(2, "decline", 0.93, at=now - timedelta(hours=2)),
            fraud_decision(3, "review", 0.77, at=now - timedelta(hours=1)),
            fraud_decision(4, "approve", 0.02, at=now),
        ]
    )
    store.close()
    port = free_port()
    command = [sys.executable, "-m", "services.cli", "desk", "--port", str(port), "--workers", "2"]
    with (tmp_path / "desk.log").open("wb") as log:
        server = subprocess.Popen(command, env=service_environment(settings), stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    if requests.get(f"{base}/healthz", timeout=5).ok:
                        break
                except requests.RequestException:
                    time.sleep(0.3)
            assert server.poll() is None, (tmp_path / "desk.log").read_text()
            yield base
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    assert CHROMIUM and CHROMEDRIVER, "install Debian's chromium and chromium-driver (infra/dev.sh setup does, as root)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _unlabelled_fields(driver: WebDriver) -> list[str]:
    """Visible form fields without a <label for=...> (or an enclosing fieldset legend for radio buttons)."""
    found: list[str] = driver.execute_script(
        """return [...document.querySelectorAll('input, select, textarea')]
             .filter(f => f.type !== 'hidden')
             .filter(f => !(f.id && document.querySelector(`label[for="${f.id}"]`)))
             .map(f => f.name || f.outerHTML);"""
    )
    return found


def _next_page(driver: WebDriver, action: Callable[[], object]) -> None:
    """Run an action that loads a new page (a submitted form, a followed link) and wait until that page has
    replaced the current one: a key press or a click returns before the browser navigates, and elements found
    in between belong to the old document and go stale under the test. The old page is known by a mark on
    its window, which a new document does not have (an element of it, once gone, can fail to be asked about
    at all: Chromium's "node does not belong to the document")."""
    driver.execute_script("window.pageBeforeAction = true")
    action()
    loaded = "return window.pageBeforeAction === undefined && document.readyState === 'complete'"
    wait = WebDriverWait(driver, NAVIGATION_SECONDS, ignored_exceptions=(WebDriverException,))
    wait.until(lambda d: d.execute_script(loaded))


def test_an_analyst_works_a_case_in_the_browser(desk_url: str, browser: WebDriver, tmp_path: Path) -> None:
    """Signed out, the queue sends to sign-in; from the keyboard the analyst signs in, filters, opens a case,
    assigns and resolves it as confirmed fraud, and sees the queue shrink and the outcome counted on the
    Quality page; every form field has a label."""
    browser.get(f"{desk_url}/queue")
    assert browser.current_url.startswith(f"{desk_url}/signin")  # signed out: the sign-in form first
    assert _unlabelled_fields(browser) == []
    key_field = browser.switch_to.active_element  # the key field has the focus
    _next_page(browser, lambda: key_field.send_keys(KEYS["analyst"], Keys.ENTER))

    assert browser.find_element(By.ID, "open-total").text == "3"
    assert _unlabelled_fields(browser) == []
    first_tab = browser.find_element(By.TAG_NAME, "body")
    first_tab.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to the content"  # the first stop of the keyboard
    browser.save_screenshot(str(tmp_path / "queue.png"))

    Select(browser.find_element(By.ID, "f-service")).select_by_value("fraud")
    outcome = browser.find_element(By.ID, "f-outcome")
    _next_page(browser, lambda: outcome.send_keys("review", Keys.ENTER))
    rows = [link.text for link in browser.find_elements(By.CSS_SELECTOR, "table.cases a")]
    assert rows == ["tx00003", "tx00001"] and browser.find_element(By.ID, "matching").text == "2"

    _next_page(browser, browser.find_element(By.LINK_TEXT, "tx00003").click)
    assert "fraud score 0.77 is at or above 0.3" in browser.page_source
    assert _unlabelled_fields(browser) == []
    _next_page(browser, browser.find_element(By.ID, "assign").click)
    assert "assigned to analyst-person" in browser.find_element(By.CLASS_NAME, "verdict").text
    browser.save_screenshot(str(tmp_path / "case.png"))
    browser.find_element(By.CSS_SELECTOR, "label[for='r-confirmed_fraud']").click()
    _next_page(browser, browser.find_element(By.ID, "resolve").click)

    assert browser.current_url.startswith(f"{desk_url}/queue")
    assert "Resolved as Confirmed fraud. The outcome fraud was recorded." in browser.page_source
    assert browser.find_element(By.ID, "open-total").text == "2"  # the queue shrank

    _next_page(browser, browser.find_element(By.LINK_TEXT, "Quality").click)
    assert browser.find_element(By.ID, "fraud-outcomes").text == "1"
    _next_page(browser, browser.find_element(By.ID, "recompute-fraud").click)
    assert browser.find_element(By.ID, "fraud-labelled").text == "1"
    for shot in ("queue.png", "case.png"):
        assert (tmp_path / shot).stat().st_size > 10_000
    print(f"screenshots: {tmp_path / 'queue.png'}, {tmp_path / 'case.png'}")
