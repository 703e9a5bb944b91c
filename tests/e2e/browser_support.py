"""A real browser for the UI tests: the system's Chromium (Debian's package), driven by Playwright,
headless. Nothing is downloaded; every page's requests are recorded so a test can check that none
left the gateway, and each page can be saved as a screenshot artifact."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(os.environ.get("TENANTGATE_ARTIFACTS", Path(__file__).parents[2] / ".artifacts")) / "ui"


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("The UI tests need Debian's chromium package (make test installs it).")
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)


@dataclass
class Visit:
    """One person's browser: its own cookies, and every request its pages made."""

    context: BrowserContext
    page: Page
    base: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def go(self, path: str) -> Page:
        self.page.goto(self.base + path)
        return self.page

    def login(self, email: str, password: str, tenant: str = "") -> None:
        page = self.go("/ui/login")
        page.locator("#tenant").fill(tenant)
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Password").fill(password)
        with page.expect_navigation():
            page.get_by_role("button", name="Log in").click()

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)

    def outside(self) -> list[str]:
        """Requests to anywhere but the gateway (data: URLs are inline, not requests)."""
        return [url for url in self.requests if not url.startswith((self.base + "/", "data:"))]


@contextmanager
def visit(browser: Browser, base: str) -> Iterator[Visit]:
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    seen = Visit(context, page, base)
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("console", lambda message: seen.console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: seen.console_errors.append(str(error)))
    try:
        yield seen
    finally:
        context.close()
