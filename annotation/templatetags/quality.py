"""Formatters of the quality figures (annotation.quality.metrics) on the quality page and the dashboard."""
from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def pct(value) -> str:
    """A share 0..1 as a whole percentage ("80%"); "–" for None."""
    if value is None:
        return "–"
    return f"{100 * float(value):.0f}%"


@register.filter
def pct_range(low, high) -> str:
    """An interval of shares as "49–94%"; "" when either end is None."""
    if low is None or high is None:
        return ""
    return f"{100 * float(low):.0f}–{100 * float(high):.0f}%"


@register.filter
def points(value) -> str:
    """A difference of shares in percentage points, signed ("+12 pts"); "–" for None."""
    if value is None:
        return "–"
    return f"{100 * float(value):+.0f} pts"


@register.filter
def signed_seconds(value) -> str:
    """A difference of seconds, signed ("-3.5 s"); "–" for None."""
    if value is None:
        return "–"
    return f"{float(value):+.1f} s"


@register.filter
def wilson(rate) -> tuple:
    """The Wilson 95% interval (low, high) of an agreement Rate (annotation.agreement.rates)."""
    from annotation.agreement.rates import wilson_interval

    return wilson_interval(rate.value, rate.n)
