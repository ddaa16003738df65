"""FastAPI hello and JSON routes: run as ASGI by uvicorn, by pagi-server with --interface asgi."""

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/", response_class=PlainTextResponse)
async def hello() -> str:
    return "Hello, world!"


@app.get("/json")
async def json_route() -> dict[str, object]:
    return {"message": "Hello, world!", "n": 42}
