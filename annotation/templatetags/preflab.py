"""Template helpers of the browser UI: markdown rendering, workspace-admin flag, small formatters."""
from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe

from annotation.access import admin_workspaces
from annotation.job_selectors import job_status_tone, job_status_word
from annotation.markdown import markdown_render

register = template.Library()


@register.simple_tag(takes_context=True)
def workspace_admin_flag(context) -> bool:
    """True when the user administers at least one workspace (cached on the request: one query)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    cached = getattr(request, "_preflab_ws_admin", None)
    if cached is None:
        cached = admin_workspaces(user).exists()
        request._preflab_ws_admin = cached
    return cached


@register.filter(name="markdown")
def markdown_filter(text) -> str:
    """Render untrusted markdown to sanitized HTML (see annotation.markdown)."""
    return mark_safe(markdown_render(text or ""))  # noqa: S308 - markdown_render sanitizes with nh3


@register.filter
def percent(value, total) -> int:
    try:
        return int(round(100 * float(value) / float(total))) if total else 0
    except (TypeError, ValueError):
        return 0


@register.filter
def get_item(mapping, key):
    if mapping is None:
        return None
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def seconds(value) -> str:
    """Seconds as a short human duration: 42 s, 3 min 5 s, 1 h 2 min."""
    if value is None:
        return "–"
    value = float(value)
    if value < 60:
        return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.inclusion_tag("partials/job_status_badge.html")
def job_status_badge(job) -> dict:
    """A job's status badge, its word and colour from annotation.job_selectors (the one place)."""
    return {"job": job, "word": job_status_word(job), "tone": job_status_tone(job)}
