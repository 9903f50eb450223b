"""The dashboard in a real headless browser (Debian's chromium driven by Selenium): the login
form keeps the admin key in the tab, the page loads with no console errors, its numbers match
the traffic the test sent, and it fits a phone's width. Screenshots are kept in
`test-artifacts/` (desktop and phone) to look at."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from router.testing.processes import ServerProcess, free_port, proxy_command
from tests.conftest import write_policy

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN_KEY = "dash-admin"


def _browser_parts() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        if os.environ.get("CI"):
            pytest.fail(
                "chromium and chromedriver are missing: scripts/install-browser installs them"
            )
        pytest.skip("needs chromium and chromedriver (scripts/install-browser)")
    return chromium, driver


@pytest.fixture
def browser() -> Iterator[object]:
    chromium, driver = _browser_parts()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        "--no-proxy-server",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    web = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield web
    finally:
        web.quit()


def test_the_dashboard_shows_the_traffic_sent(
    browser: object, fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    from selenium.webdriver import Chrome
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, Chrome)
    policy = write_policy(
        tmp_path / "p.yaml",
        fake_upstream.url,
        budgets=[{"scope": "global", "window": "day", "limit_usd": 5}],
        access={"open": True, "admin_keys_env": "TIERWISE_ADMIN_KEYS"},
    )
    port = free_port()
    env = {
        "TIERWISE_LEDGER_URL": f"sqlite:///{tmp_path / 'l.db'}",
        "TIERWISE_ADMIN_KEYS": ADMIN_KEY,
    }
    with ServerProcess(
        proxy_command(policy, port), port, env=env, log=tmp_path / "proxy.log"
    ) as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="app", max_retries=0)
        try:
            for i in range(6):
                client.chat.completions.create(
                    model="cheap", messages=[{"role": "user", "content": f"question {i}"}]
                )
            for i in range(2):
                client.chat.completions.create(
                    model="frontier", messages=[{"role": "user", "content": f"hard {i}"}]
                )
        finally:
            client.close()
        time.sleep(1.2)  # the settlements land after the answers
        spend = httpx.get(
            f"{server.url}/admin/spend", headers={"authorization": f"Bearer {ADMIN_KEY}"}
        ).json()["spend"]

        browser.get(f"{server.url}/dashboard")
        login = browser.find_element(By.ID, "login")
        assert login.is_displayed()
        browser.find_element(By.ID, "key").send_keys("wrong")
        browser.find_element(By.ID, "enter").click()
        wait = WebDriverWait(browser, 10)
        wait.until(lambda b: b.find_element(By.ID, "login-error").text)
        assert "refused" in browser.find_element(By.ID, "login-error").text
        browser.find_element(By.ID, "key").send_keys(ADMIN_KEY)
        browser.find_element(By.ID, "enter").click()
        wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"))

        def shown(element_id: str) -> str:
            return browser.find_element(By.ID, element_id).text

        assert shown("requests-count") == "8"
        assert shown("frontier-share") == "25.0 %"
        assert shown("policy-version") == "1"
        assert shown("threshold") == "0.500"
        assert shown("spend-today") == _usd(spend["day"]["total_usd"])
        assert shown("saved-today") == _usd(spend["day"]["saved_usd"])
        decisions = browser.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")
        assert len(decisions) == 8
        tiers = [row.find_elements(By.TAG_NAME, "td")[2].text for row in decisions]
        assert sorted(tiers) == ["cheap"] * 6 + ["frontier"] * 2
        budgets = browser.find_elements(By.CSS_SELECTOR, "#budgets tbody tr")
        assert [row.find_elements(By.TAG_NAME, "td")[0].text for row in budgets] == ["global-day"]
        assert len(budgets[0].find_elements(By.CSS_SELECTOR, "svg.budget-chart line")) == 3
        health = browser.find_elements(By.CSS_SELECTOR, "#health tbody tr")
        assert {row.find_elements(By.TAG_NAME, "td")[0].text for row in health} == {
            "cheap",
            "frontier",
        }
        bars = browser.find_elements(By.CSS_SELECTOR, "#difficulty-chart rect")
        assert len(bars) == 20
        assert "?" not in shown("overhead-p50") and shown("overhead-p50").endswith("ms")

        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
        browser.set_window_size(390, 1400)  # a phone's width
        time.sleep(0.3)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 1, f"the page is {overflow}px wider than a phone"
        browser.save_screenshot(str(ARTIFACTS / "dashboard-phone.png"))
        logged = browser.get_log("browser")  # type: ignore[no-untyped-call]
        errors = [e for e in logged if e["level"] == "SEVERE"]
        # the wrong key's 401 is logged by the browser as a failed fetch; nothing else may be
        assert all("401" in e["message"] for e in errors), errors


def _usd(x: float) -> str:
    digits = 0 if x >= 100 else 2 if x >= 1 else 4
    return f"${x:.{digits}f}"
