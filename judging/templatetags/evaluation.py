"""Template filters of the evaluation pages."""
from django import template

register = template.Library()

MISSING = "—"


def _fixed(value, digits, *, scale: float = 1.0, suffix: str = "") -> str:
    """value x scale with `digits` decimals and the suffix; None, "" or not a number -> "—"."""
    if value is None or value == "":
        return MISSING
    try:
        return f"{float(value) * scale:.{int(digits)}f}{suffix}"
    except (TypeError, ValueError):
        return MISSING


@register.filter
def num(value, digits: int = 1) -> str:
    """A number with fixed decimals: 2.345|num:1 -> "2.3"; None -> "—"."""
    return _fixed(value, digits)


@register.filter
def pct(value, digits: int = 1) -> str:
    """A share as a percentage: 0.657|pct -> "65.7%"; None -> "—"."""
    return _fixed(value, digits, scale=100.0, suffix="%")
