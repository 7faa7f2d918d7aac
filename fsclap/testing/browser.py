"""Headless Chromium for browser tests: Debian's /usr/bin/chromium driven by Playwright's Python
API (no ``playwright install``), and the steps of the Prefect UI that the tests take."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def headless_chromium(*extra_args: str) -> Iterator:
    """A Playwright ``Browser`` on Debian's headless Chromium (:data:`CHROMIUM_ARGS` plus
    ``extra_args``), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()


def prefect_ui_login(page, ui_url: str, auth_string: str, timeout_ms: float = 60_000) -> None:
    """Log in to a Prefect 3 UI whose server runs with ``PREFECT_SERVER_API_AUTH_STRING``: its
    login page takes the auth string (kept in the page's local storage), then shows the dashboard.
    The next page is best opened with ``page.goto``: a fresh load, without the error toasts of the
    requests the UI made before the login."""
    page.goto(f"{ui_url}/login")
    page.get_by_placeholder("admin:pass").fill(auth_string)
    page.get_by_role("button", name="Login").click()
    page.wait_for_url(lambda url: "/login" not in url, timeout=timeout_ms)


def prefect_ui_tab(page, name: str):
    """Open a tab of a Prefect UI page (a flow run's Logs, Task Runs, Artifacts, ...)."""
    page.locator("li.p-tab", has_text=name).click()
