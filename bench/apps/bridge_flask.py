"""Flask hello and JSON routes: WSGI for gunicorn and for pagi-server with --interface wsgi."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def hello() -> tuple[str, int, dict[str, str]]:
    return "Hello, world!", 200, {"content-type": "text/plain"}


@app.get("/json")
def json_route():  # type: ignore[no-untyped-def]
    return jsonify(message="Hello, world!", n=42)
