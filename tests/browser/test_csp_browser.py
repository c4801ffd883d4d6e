"""The pages work under the Content-Security-Policy in a real browser: Chromium reports every refused script,
style, image or eval as a console error ("Refused to execute ...", "... violates the following Content Security
Policy directive ...") and a securitypolicyviolation event. The annotate page (ranking with the keys, submitting
through htmx), the dashboard, a job page, the members and account pages (behaviours that were inline handlers),
the API docs (Swagger UI) and the Django admin must produce none."""
from pathlib import Path

import orjson
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.imports import import_file_save
from annotation.jobs import job_create, job_run_inline
from annotation.models import Membership, Response
from tests.browser.test_annotate_browser import _login, campaign  # noqa: F401 - the fixture is used by name

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
CSP_WORDS = ("Content Security Policy", "Content-Security-Policy", "Refused to")

# runs before any page script, outside the page's CSP (Playwright injects it): records every violation
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " in " + e.sourceFile + ":" + e.lineNumber);
});
"""


class Watch:
    """Console errors and violation events of every page of one browser context."""

    def __init__(self, context):
        self.console: list[str] = []
        self.events: list[str] = []
        self.errors: list[str] = []
        context.add_init_script(RECORD_VIOLATIONS)
        context.on("page", self.attach)

    def attach(self, page):
        page.on("console", lambda m: self.console.append(f"{page.url}: {m.text}")
                if m.type in ("error", "warning") and any(w in m.text for w in CSP_WORDS) else None)
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: {e}"))

    def collect(self, page):
        if not page.is_closed():
            self.events += [f"{page.url}: {v}" for v in page.evaluate("window.__cspViolations || []")]

    def problems(self) -> list[str]:
        return self.console + self.events + self.errors


def _import_job(ws, dataset, admin):
    good = orjson.dumps({"external_id": "csp-1", "fields": {"prompt": "p", "response-1": "x", "response-2": "y"}})
    path = import_file_save(dataset=dataset, uploaded_file=SimpleUploadedFile("recs.jsonl", good + b"\n{broken"))
    return job_run_inline(job=job_create(kind="import", workspace=ws, dataset=dataset, created_by=admin,
                                         input_file=path, start=False))


def test_the_browser_reports_a_violation_when_a_page_breaks_the_policy(browser, live_server, campaign):  # noqa: F811
    """The watch below is only worth something if it sees a refused inline script: it does, and the script
    does not run."""
    context = browser.new_context()
    watch = Watch(context)
    page = _login(context, live_server.url, "anna", "anna-pass-1")
    page.evaluate("""() => { const s = document.createElement("script"); s.textContent = "window.__ran = 1";
                             document.body.appendChild(s); }""")
    page.wait_for_timeout(200)
    watch.collect(page)
    assert page.evaluate("window.__ran") is None
    assert any("script-src" in v for v in watch.events), watch.events
    assert any("Content Security Policy" in m for m in watch.console), watch.console
    context.close()


def test_pages_work_under_the_content_security_policy(browser, live_server, campaign):  # noqa: F811
    from playwright.sync_api import expect

    base = live_server.url
    pairs = campaign["pairs"]
    ws = pairs.workspace
    boss = get_user_model().objects.get(username="boss")
    boss.is_staff = boss.is_superuser = True
    boss.save(update_fields=["is_staff", "is_superuser"])
    job = _import_job(ws, pairs, boss)
    SHOTS.mkdir(parents=True, exist_ok=True)

    # the annotator ranks with the keyboard and submits: the next record arrives through an htmx swap
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    watch = Watch(context)
    page = _login(context, base, "anna", "anna-pass-1")
    page.goto(f"{base}/datasets/{pairs.pk}/annotate/")
    page.wait_for_selector("#annotate-form")
    first = page.locator("#annotate-form").get_attribute("data-record")
    page.keyboard.press("2")
    page.keyboard.press("1")
    expect(page.locator('input[name="rank__ranking__response-1"]')).to_have_value("2")
    page.locator("body").click(position={"x": 5, "y": 300})  # focus outside any text box
    page.keyboard.press("Enter")
    expect(page.locator("#annotate-form")).not_to_have_attribute("data-record", first)
    assert Response.objects.filter(user__username="anna", status="submitted").count() == 1
    page.goto(f"{base}/account/")
    page.click("#token-key")
    assert page.evaluate("document.getSelection().toString() || (document.activeElement.selectionEnd"
                         " - document.activeElement.selectionStart)"), "clicking the token selects it"
    watch.collect(page)
    context.close()

    # the admin: dashboard (htmx polling), a job page, members (a role change submits on change), API docs, admin
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    admin_watch = Watch(context)
    page = _login(context, base, "boss", "boss-pass-1")
    page.goto(f"{base}/datasets/{pairs.pk}/")
    expect(page.locator("#dashboard-stats")).to_be_visible()
    with page.expect_request(lambda r: "/dashboard/stats/" in r.url, timeout=20_000):
        pass  # the figures are polled through htmx
    # ... but not while the tab is hidden (data-poll-when-visible, which replaced an htmx filter expression): the
    # next turn of the polling is called off before it sends anything; once the tab shows again, polling goes on
    page.evaluate("""() => {
        window.__polls = {refused: 0, sent: 0};
        const stats = e => (e.detail.requestConfig ? e.detail.requestConfig.path : "").includes("/dashboard/stats/");
        document.addEventListener("htmx:beforeRequest", e => { if (stats(e) && e.defaultPrevented) window.__polls.refused++; });
        document.addEventListener("htmx:beforeSend", e => { if (stats(e)) window.__polls.sent++; });
        Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true}); }""")
    page.wait_for_function("() => window.__polls.refused >= 1", timeout=20_000)
    assert page.evaluate("window.__polls.sent") == 0
    page.evaluate("() => Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true})")
    page.wait_for_function("() => window.__polls.sent >= 1", timeout=20_000)
    admin_watch.collect(page)
    page.goto(f"{base}/jobs/{job.pk}/")
    expect(page.locator(f"#job-progress-{job.pk}")).to_be_visible()
    admin_watch.collect(page)
    page.goto(f"{base}/workspaces/{ws.pk}/members/")
    page.select_option("select[aria-label='Role of ben']", "admin")
    page.wait_for_load_state("networkidle")
    assert Membership.objects.get(workspace=ws, user__username="ben").role == "admin"
    admin_watch.collect(page)
    page.goto(f"{base}/api/docs/")
    page.wait_for_selector(".opblock", timeout=15000)
    page.locator(".opblock .opblock-summary").first.click()
    page.wait_for_selector(".opblock-body", timeout=5000)
    page.screenshot(path=str(SHOTS / "csp-api-docs.png"))
    admin_watch.collect(page)
    for url in ("/admin/", "/admin/annotation/dataset/", f"/admin/annotation/dataset/{pairs.pk}/change/",
                "/admin/annotation/dataset/add/", "/admin/auth/user/", f"/admin/auth/user/{boss.pk}/change/"):
        response = page.goto(base + url)
        assert response.status == 200, url
        expect(page.locator("#content")).to_be_visible()
        admin_watch.collect(page)
    # the admin's list filter and actions run (its JavaScript is loaded from static files)
    page.goto(f"{base}/admin/annotation/dataset/")
    page.locator("#action-toggle").check()
    assert page.locator("input.action-select:checked").count() >= 1
    admin_watch.collect(page)
    context.close()

    problems = watch.problems() + admin_watch.problems()
    assert not problems, "\n".join(problems)
