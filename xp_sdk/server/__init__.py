"""``xp serve``: the deployment behind an HTTP API (FastAPI), with a verification page.

``xp_sdk.server.app.create_app`` builds the ASGI app; ``xp_sdk.server.serve.serve`` runs it with uvicorn.
Nothing is imported here, so ``xp_sdk.remote`` and the CLI stay light until a server is wanted.
"""
