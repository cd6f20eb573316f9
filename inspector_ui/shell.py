"""The UI's pages: one shell (the head, the top bar and its navigation) around each page's own markup.

A page's markup is inspector_ui/pages/<name>.html, in parts that each start with a marker line,
in the order they appear on the page: `<!-- part: topbar -->` (in the top bar, after the brand),
`<!-- part: controls -->` (the top bar's controls, before the theme toggle), and
`<!-- part: main -->` (everything after the top bar). The shell holds no inline script or style,
nor may a page (the CSP is 'self'): a page's behaviour is its module under /static, which reads
its name or id from the location.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PAGES", "SHARE_PAGE", "Page"]

PAGES_DIR = Path(__file__).parent / "pages"
NAVIGATION = (("/", "Exchanges"), ("/services", "Services"), ("/traces", "Traces"), ("/monitors", "Monitors"))
_PART = re.compile(r"^<!-- part: (topbar|controls|main) -->\n", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Page:
    """What makes one page of the shell its own."""

    markup: str
    """The file in inspector_ui/pages holding its parts."""
    title: str
    script: str
    """Its module under /static."""
    stylesheet: str | None = None
    """Its stylesheet under /static, after app.css."""
    body_class: str | None = None
    current: str | None = None
    """The navigation link marked current: the page's own view, or the view a detail page belongs to."""
    navigation: bool = True
    """False (a share page, open to anyone with the link): the brand links nowhere and no view is listed."""
    meta: tuple[tuple[str, str], ...] = ()
    """Extra <meta name content> pairs."""

    def render(self) -> str:
        """The page's HTML. Every field is this module's own constant, written in as it is."""
        parts = _parts((PAGES_DIR / self.markup).read_text(encoding="utf-8"))
        meta = "".join(f'<meta name="{name}" content="{content}">\n' for name, content in self.meta)
        stylesheet = f'<link rel="stylesheet" href="/static/{self.stylesheet}">\n' if self.stylesheet else ""
        body_class = f' class="{self.body_class}"' if self.body_class else ""
        faults = ""
        if self.navigation:
            brand = '<a class="brand" href="/">Passageway</a>'
            # The active fault rules' banner, on every page but a share's (its viewers have no API).
            faults = '<link rel="stylesheet" href="/static/faults.css">\n<script type="module" src="/static/faults.js"></script>\n'
            nav = f'  <nav class="nav-links" aria-label="Views">{"".join(map(self._link, NAVIGATION))}</nav>\n'
        else:
            brand, nav = '<span class="brand">Passageway</span>', ""
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
{meta}<title>{self.title}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/app.css">
{stylesheet}<script src="/static/theme.js"></script>
<script type="module" src="/static/{self.script}"></script>
{faults}</head>
<body{body_class}>
<header class="topbar">
  {brand}
{parts.get("topbar", "")}{nav}  <div class="controls">
{parts.get("controls", "")}    <button id="theme-toggle" type="button" class="icon" title="Toggle light/dark">◐</button>
  </div>
</header>
{parts["main"]}</body>
</html>
"""

    def _link(self, view: tuple[str, str]) -> str:
        path, text = view
        current = ' aria-current="page"' if path == self.current else ""
        return f'<a href="{path}"{current}>{text}</a>'


def _parts(text: str) -> dict[str, str]:
    """The markup file's parts by name; ValueError for text before the first marker."""
    before, *named = _PART.split(text)
    if before.strip():
        raise ValueError("a page's markup starts with a part marker, e.g. <!-- part: main -->")
    return dict(zip(named[::2], named[1::2], strict=True))


PAGES = {
    "/": Page("index.html", "Passageway inspector", "app.js", current="/"),
    "/services": Page(
        "services.html", "Services · Passageway", "services.js", "services.css", "services-page", current="/services"
    ),
    "/services/{name}": Page(
        "service.html", "Service · Passageway", "service.js", "service.css", "service-page",
        meta=(("referrer", "no-referrer"),), current="/services",
    ),
    "/traces": Page("traces.html", "Traces · Passageway", "traces.js", "trace.css", current="/traces"),
    "/traces/{trace_id}": Page("trace.html", "Trace · Passageway", "trace.js", "trace.css", current="/traces"),
    "/monitors": Page(
        "monitors.html", "Monitors · Passageway", "monitors.js", "monitors.css", "monitors-page", current="/monitors"
    ),
    "/test-runs/{run_id}": Page(
        "test_run.html", "Test run · Passageway", "test_run.js", "test_run.css", "test-run-page",
        meta=(("referrer", "no-referrer"),),
    ),
}  # fmt: skip
"""The inspector's pages by path; each script reads its name or id from the location."""

SHARE_PAGE = Page(
    "share.html", "Shared traffic · Passageway", "share.js", "share.css", "share-page", navigation=False,
    meta=(("robots", "noindex, nofollow"), ("referrer", "no-referrer")),
)  # fmt: skip
"""/s/<token>: served by the shares router once the link is checked."""
