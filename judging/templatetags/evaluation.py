"""Template filters of the evaluation pages (issue #6)."""
from django import template

register = template.Library()


@register.filter
def pct(value, digits: int = 1) -> str:
    """0.657 -> "65.7%"; None -> "—"."""
    if value is None or value == "":
        return "—"
    try:
        return f"{float(value) * 100:.{int(digits)}f}%"
    except (TypeError, ValueError):
        return "—"


@register.filter
def num(value, digits: int = 1) -> str:
    """A number with fixed decimals; None -> "—"."""
    if value is None or value == "":
        return "—"
    try:
        return f"{float(value):.{int(digits)}f}"
    except (TypeError, ValueError):
        return "—"
