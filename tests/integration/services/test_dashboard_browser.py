"""The Ray dashboard in a real browser: a newcomer finds their build by its pairforge id.

Headless Chromium (Debian's ``chromium``, driven by Playwright with no browser download)
opens the dashboard of a private Ray head with token authentication on, types the token
that ``ray get-auth-token`` prints into the "Authentication Token Required" dialog, as the
dialog tells a user to, and finds the build the job service submitted on the Jobs page,
listed under its pairforge id with state SUCCEEDED. Full-page screenshots land in
``test-artifacts/`` (git-ignored) so a person can look at what the test saw:

- ``test-artifacts/dashboard-jobs.png``: the Jobs list with the pairforge job's row;
- ``test-artifacts/dashboard-job.png``: the job's page, the link the service reports.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import REPO_ROOT, SANDBOX_IMAGE, requires_sandbox_image
from tests.integration.services.conftest import Service, quickstart_spec, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ARTIFACTS = REPO_ROOT / "test-artifacts"
# Playwright's assertions wait this long (ms) for the page to get there; the dashboard
# polls its API every few seconds and the machine may be busy.
PAGE_WAIT_MS = 30_000


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("needs Debian's chromium on PATH: deploy/local/setup.sh installs it")
    return found


@pytest.fixture
def browser_page() -> Iterator[Page]:
    """A fresh headless Chromium page (no stored token or cookie), 1400x900."""
    executable = _chromium()
    with sync_playwright() as playwright:
        # Playwright passes --headless and --no-sandbox (needed as root) itself; the
        # executable is the system's, so nothing is downloaded.
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--disable-gpu", "--disable-background-networking", "--disable-sync"],
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(PAGE_WAIT_MS)
            yield context.new_page()
        finally:
            browser.close()


def _ray_token() -> str:
    """The cluster token as the dialog tells a user to get it: ``ray get-auth-token``."""
    printed = subprocess.run(
        [sys.executable, "-m", "ray.scripts.scripts", "get-auth-token"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert printed.returncode == 0, printed.stderr
    return printed.stdout.strip()


@requires_sandbox_image
def test_dashboard_lists_the_build_by_its_pairforge_id(
    service: Service, ray_head: str, browser_page: Page
) -> None:
    page = browser_page

    # A small quickstart (4 problems, 3 candidates each) so the build takes seconds.
    spec = quickstart_spec(
        "runs/dashboard", source={"limit": 4}, sampler={"k": 3}, sandbox={"image": SANDBOX_IMAGE}
    )
    with service.client() as client:
        created = client.post("/jobs", json=spec)
        assert created.status_code in (200, 201, 202), created.text
        job_id = created.json()["id"]
        job = wait_for(client, job_id, {"succeeded", "failed", "cancelled"}, timeout_s=240)
    assert job["state"] == "succeeded", job
    dashboard_url = job["dashboard_url"]
    assert dashboard_url == f"{ray_head}/#/jobs/{job_id}"

    # The head really asks for a token: otherwise the dialog below proves nothing.
    mode = httpx.get(f"{ray_head}/api/authentication_mode", timeout=10).json()
    assert mode["authentication_mode"] == "token", mode

    page.goto(f"{ray_head}/#/jobs")
    dialog = page.get_by_role("dialog", name="Authentication Token Required")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("ray get-auth-token")
    dialog.get_by_label("Authentication Token").fill(_ray_token())
    dialog.get_by_role("button", name="Submit").click()
    expect(dialog).to_be_hidden()

    # Find it as a user would among many: the pairforge id is the Ray submission id.
    page.get_by_label("Submission ID").fill(job_id)
    row = page.get_by_role("row").filter(has_text=job_id)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("SUCCEEDED")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-jobs.png"), full_page=True)

    # The link `pairforge status` prints opens that job's page, still authenticated.
    page.goto(dashboard_url)
    expect(page.get_by_role("dialog", name="Authentication Token Required")).to_have_count(0)
    expect(page.locator("body")).to_contain_text(job_id)
    expect(page.locator("body")).to_contain_text("SUCCEEDED")
    page.screenshot(path=str(ARTIFACTS / "dashboard-job.png"), full_page=True)
    assert (ARTIFACTS / "dashboard-jobs.png").stat().st_size > 10_000
