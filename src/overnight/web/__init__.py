"""The web dashboard (`overnight web`): needs the `web` extra (starlette, uvicorn, jinja2)."""
