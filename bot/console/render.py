"""HTML for the console: Jinja2 with autoescape on, and the headers every response carries."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bot.console.viewer import VIEWER

STATIC_ROUTE = "console_static"

# Customer names and messages will be rendered here: autoescape is on for every .html
# template, and StrictUndefined turns a misspelt variable into an error, not a blank.
_templates = Environment(
    loader=PackageLoader("bot", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)

# No inline script or style anywhere and nothing from another origin: a customer's text
# that slipped past escaping still could not run. Images may be data:/blob: URLs so photo
# previews work before upload.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def static_url(request: web.Request, filename: str) -> str:
    return str(request.app.router[STATIC_ROUTE].url_for(filename=filename))


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """Render `console/<template>` with the viewer (if any) and the stylesheet's URL."""
    html = _templates.get_template(f"console/{template}").render(
        viewer=request.get(VIEWER),
        css_url=static_url(request, "console.css"),
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
