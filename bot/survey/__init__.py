"""The survey page: the customer's tiny page behind the satisfaction check's link.

    links   what a link leads to (its step, job and shop), the name the page may show,
            the form's token
    views   GET /s/{token} (the question) and POST /s/{token} (the answer)

No login and no session: the link's secret is the key, for `survey_link_days` after it was
sent. Wiring: `setup(app)` in `create_app()`.
"""

from aiohttp import web

from bot.survey import views

ROUTE = "survey"


def setup(app: web.Application) -> None:
    """Register `/s/{token}` on the main app."""
    app.router.add_get("/s/{token}", views.page, name=ROUTE)
    app.router.add_post("/s/{token}", views.answer, name="survey_answer")
