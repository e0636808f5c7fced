"""Web plumbing shared by every domain's routes: every `AppKey` (`keys`), the error
middleware and request parsing (`plumbing`), and server-rendered pages (`pages`, Jinja2
templates under ``templates/``).
"""
