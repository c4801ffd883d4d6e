"""Template helpers of the browser UI: markdown rendering, workspace-admin flag, small formatters."""
from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe

from annotation.access import admin_workspaces
from annotation.job_selectors import job_counts_text, job_status_tone, job_status_word, job_words
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


@register.simple_tag
def job_counts(job) -> str:
    """A job's counters in its kind's words ("97 lines imported, 3 rejected (of 100)"); escaped like any text."""
    return job_counts_text(job)


@register.simple_tag
def job_words_of(job) -> dict:
    """How a job's kind calls its items and their outcomes (annotation.job_selectors.job_words)."""
    return job_words(job)


@register.filter
def job_tone(job) -> str:
    """ok / warn / danger / accent: the colour of a job's status badge and progress bar."""
    return job_status_tone(job)
