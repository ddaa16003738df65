"""The Flask app of bridge_flask.py as ASGI through a2wsgi, for uvicorn (bench/.venv only)."""

from a2wsgi import WSGIMiddleware
from bridge_flask import app as flask_app

app = WSGIMiddleware(flask_app)
