"""Markdown of untrusted text (records, guidelines, judge rationales) to safe HTML.

Two layers: markdown-it-py with raw HTML disabled (tags in the text come out escaped), then nh3
(an allow-list HTML sanitizer) over the result, so no markup or script from a record can run
even if the renderer had a bug. Links get rel="noopener nofollow" and open in a new tab; only
http(s) and mailto URLs survive; images become links (no third-party requests from a record).
"""
from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td", "span",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "target"},
    "pre": {"data-lang"},
    "th": {"style"},
    "td": {"style"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}


def _fence(self, tokens, idx, options, env):
    token = tokens[idx]
    lang = (token.info or "").strip().split(maxsplit=1)[0][:30] if token.info else ""
    lang_attr = f' data-lang="{escapeHtml(lang)}"' if lang else ""
    return f"<pre{lang_attr}><code>{escapeHtml(token.content)}</code></pre>\n"


def _image(self, tokens, idx, options, env):
    # Remote images in record text would leak annotators' addresses to third parties: show a link.
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    src = token.attrGet("src") or ""
    return f'<a href="{escapeHtml(src)}">[image: {escapeHtml(alt)}]</a>'


def _make_renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("fence", _fence)
    md.add_render_rule("image", _image)
    return md


_MD = _make_renderer()


def html_sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener nofollow noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties={"text-align"},
        strip_comments=True,
    )


@lru_cache(maxsize=4096)
def markdown_render(text: str) -> str:
    """Render markdown from an untrusted source to sanitized HTML (cached: records repeat)."""
    if not text:
        return ""
    return html_sanitize(_MD.render(str(text)))


def plain_render(text: str) -> str:
    """Untrusted plain text as HTML: escaped, line breaks kept by CSS (white-space: pre-wrap)."""
    return escapeHtml(str(text or ""))
