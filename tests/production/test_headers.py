"""Content-Security-Policy, Permissions-Policy and the other security headers on every page, and pages that
can run under that policy: the walk of test_access (every URL pattern, admin/ and the API docs added) as
workspace A's admin (a superuser here, for the Django admin) and annotator, pages also as htmx partials.

The policy itself: scripts only from the app's own files (no inline code, no eval), style sheets from 'self',
images from 'self' and data:, nothing may frame the app. A page that needs an inline <script>, an on*
attribute, an htmx filter or js: value (htmx evaluates those, and runs with allowEval false), or a <style>
block would break under it, so the rendered HTML is checked for each of those."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from .test_access import ROUTES, World, _call, _content

pytestmark = pytest.mark.django_db

REQUIRED_CSP = {
    "default-src": {"'self'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "object-src": {"'none'"},
    "base-uri": {"'self'"},
    "form-action": {"'self'"},
    "frame-ancestors": {"'none'"},
}
SWITCHED_OFF = ("camera", "microphone", "geolocation", "payment", "usb")


def csp_directives(header: str) -> dict[str, set[str]]:
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = set(words[1:])
    return directives


class _InlineCode(HTMLParser):
    """Collects what a script-src 'self' / style-src 'self' policy without 'unsafe-eval' refuses or breaks."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and not attributes.get("src") and attributes.get("type") != "application/json":
            self._in_inline_script = True
        if tag == "style":
            self.problems.append("a <style> block")
        for src_attr in ("src", "href"):
            value = attributes.get(src_attr) or ""
            if tag in ("script", "link") and re.match(r"(?:https?:)?//", value):
                self.problems.append(f"<{tag} {src_attr}={value!r}> from another host")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...> (inline event handler)")
            elif name.startswith(("hx-on", "data-hx-on")):
                self.problems.append(f"<{tag} {name}> (htmx evaluates it)")
            elif name in ("hx-vals", "hx-vars", "hx-headers") and value.strip().startswith("js:") or name == "hx-vars":
                self.problems.append(f"<{tag} {name}={value!r}> (htmx evaluates it)")
            elif name == "hx-trigger" and "[" in value:
                self.problems.append(f"<{tag} hx-trigger={value!r}> (an event filter: htmx evaluates it)")
            elif name in ("href", "action", "formaction") and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data):
        if self._in_inline_script and data.strip():
            self.problems.append(f"an inline <script>: {data.strip()[:60]!r}")


def inline_code(html: str) -> list[str]:
    parser = _InlineCode()
    parser.feed(html)
    parser.close()
    return parser.problems


def header_problems(response) -> list[str]:
    problems = []
    header = response.get("Content-Security-Policy")
    if not header:
        return ["no Content-Security-Policy header"]
    directives = csp_directives(header)
    for name, sources in REQUIRED_CSP.items():
        if directives.get(name) != sources:
            problems.append(f"CSP {name} is {sorted(directives.get(name, []))}, expected {sorted(sources)}")
    unsafe = [f"{name} {s}" for name, sources in directives.items() for s in sources
              if s in ("'unsafe-eval'", "'unsafe-hashes'", "*") or (s == "'unsafe-inline'" and name != "style-src-attr")]
    if unsafe:
        problems.append(f"CSP allows {unsafe}")
    policy = response.get("Permissions-Policy", "")
    for feature in SWITCHED_OFF:
        if f"{feature}=()" not in policy:
            problems.append(f"Permissions-Policy does not switch {feature} off: {policy!r}")
    if response.get("X-Frame-Options") != "DENY":
        problems.append(f"X-Frame-Options {response.get('X-Frame-Options')!r}")
    if response.get("X-Content-Type-Options") != "nosniff":
        problems.append(f"X-Content-Type-Options {response.get('X-Content-Type-Options')!r}")
    if response.get("Referrer-Policy") != "same-origin":
        problems.append(f"Referrer-Policy {response.get('Referrer-Policy')!r}")
    return problems


def _admin_urls(world: World) -> list[str]:
    """The Django admin: its index, and every registered model's list, add form and one change form."""
    urls = [reverse("admin:index"), reverse("admin:password_change")]
    by_model = {type(obj): obj for obj in world.objects.values()}
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        if model_admin.has_add_permission(_FakeRequest(world.admin_a)):
            urls.append(reverse("admin:{}_{}_add".format(*info)))
        obj = by_model.get(model) or model._default_manager.first()
        if obj is not None:
            urls.append(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
    return urls


class _FakeRequest:
    def __init__(self, user):
        self.user = user


@pytest.fixture
def staff_world(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    world = World()
    world.admin_a.is_staff = world.admin_a.is_superuser = True
    world.admin_a.save(update_fields=["is_staff", "is_superuser"])
    yield world
    world.close()


def _page_urls(world: World) -> list[tuple[object, str]]:
    pages = []
    for route in ROUTES:
        if "get" not in route.methods:
            continue
        url = "/" + route.route
        for name in route.params:
            url = re.sub(rf"<(?:\w+:)?{name}>", str(world.param_value(route, name)), url)
        pages.append((route, url))
    return pages


def test_every_page_sends_the_security_headers(staff_world):
    world = staff_world
    missing = []
    for route, url in _page_urls(world):
        for user in (world.admin_a, world.annotator_a, None):
            for htmx in (False, True) if not route.is_api else (False,):
                response = _call(world, route, url, "get", user, htmx=htmx)
                for problem in header_problems(response):
                    who = user.username if user else "anonymous"
                    missing.append(f"GET {url} as {who}{' (htmx)' if htmx else ''} -> {response.status_code}: {problem}")
    client = Client()
    client.force_login(world.admin_a)
    others = ["/login/", "/api/docs/", "/api/docs/?script=", "/api/schema/", "/no-such-page/", *_admin_urls(world)]
    for url in others:
        response = client.get(url)
        missing += [f"GET {url} -> {response.status_code}: {p}" for p in header_problems(response)]
    assert len(_page_urls(world)) > 30, "the walk covers the pages"
    assert not missing, "\n".join(missing[:60])


def test_every_page_runs_under_the_policy(staff_world):
    """No page (nor htmx partial) carries code the policy refuses: inline scripts, on* handlers, htmx
    expressions, <style> blocks, scripts or style sheets from other hosts."""
    world = staff_world
    found = []
    checked = 0
    for route, url in _page_urls(world):
        if route.is_api:
            continue
        for user in (world.admin_a, world.annotator_a):
            for htmx in (False, True):
                response = _call(world, route, url, "get", user, htmx=htmx)
                if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
                    continue
                checked += 1
                found += [f"GET {url} as {user.username}{' (htmx)' if htmx else ''}: {p}"
                          for p in inline_code(_content(response))]
    client = Client()
    client.force_login(world.admin_a)
    for url in ["/api/docs/", *_admin_urls(world)]:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        checked += 1
        found += [f"GET {url}: {p}" for p in inline_code(response.content.decode())]
    logged_out = Client().get("/login/")
    found += [f"GET /login/ (anonymous): {p}" for p in inline_code(logged_out.content.decode())]
    assert checked > 40
    assert not found, "\n".join(found)


def test_the_checks_recognise_what_the_policy_refuses():
    """The HTML check above is only as good as its parser: each kind of inline code is found, allowed markup is not."""
    assert inline_code('<script src="/static/x.js"></script><script type="application/json">{"a": 1}</script>'
                       '<div hx-trigger="every 2s" data-x="1" style="width: 3%"></div>') == []
    for html in ("<script>alert(1)</script>", '<button onclick="go()">', '<select onchange="x">',
                 '<div hx-on:click="x()">', '<div hx-on-click="x()">', '<div hx-vals=\'js:{a: 1}\'>',
                 "<div hx-trigger=\"every 5s [document.visibilityState === 'visible']\">", "<style>a{}</style>",
                 '<script src="https://cdn.example.org/x.js"></script>', '<a href="javascript:alert(1)">'):
        assert inline_code(html), html


def test_the_500_page_sends_the_policy_and_needs_no_inline_style(settings):
    from django.test import override_settings
    from django.urls import path

    def boom(request):
        raise RuntimeError("boom")

    urlpatterns = [path("boom/", boom)]
    module = type("urls", (), {"urlpatterns": urlpatterns})
    with override_settings(ROOT_URLCONF=module, DEBUG=False):
        response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    assert header_problems(response) == []
    assert inline_code(response.content.decode()) == []


def test_the_policy_built_once_is_django_csps_and_follows_the_settings(rf, settings):
    from csp.constants import HEADER
    from csp.middleware import CSPMiddleware as LibraryCSPMiddleware
    from django.http import HttpResponse

    from preflab.security import CSPMiddleware

    def headers(middleware_class, **response_attrs):
        request = rf.get("/api/v1/workspaces/")
        middleware = middleware_class(lambda r: None)
        middleware.process_request(request)
        response = HttpResponse("{}")
        response.__dict__.update(response_attrs)
        return middleware.process_response(request, response).get(HEADER)

    assert headers(CSPMiddleware) == headers(LibraryCSPMiddleware)
    assert csp_directives(headers(CSPMiddleware))["frame-ancestors"] == {"'none'"}
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'self'"], "img-src": ["https://example.org"]}}
    assert csp_directives(headers(CSPMiddleware))["img-src"] == {"https://example.org"}  # the settings, as changed
    assert headers(CSPMiddleware) == headers(LibraryCSPMiddleware)
    own = {"_csp_replace": {"img-src": ["'self'", "data:"]}}  # a view's own policy (django-csp's decorators)
    assert csp_directives(headers(CSPMiddleware, **own))["img-src"] == {"'self'", "data:"}
    assert headers(CSPMiddleware, _csp_exempt=True) is None
