"""mini: a small web framework on pagi-tools (decorator routes, injection, validation).

``app = Mini()``; ``@app.get("/books/{book_id}")`` registers a handler whose
parameters say what it needs, by annotation:

* ``Request``: the request;
* a type registered with ``@app.provide`` (a function whose return
  annotation is that type; it may ask for things the same way): its value,
  made once per request;
* a dataclass: the JSON body, checked field by field;
* a name in the path, else a query parameter: converted to the annotated
  type (``int``, ``float``, ``bool``, ``str``, ``X | None``), required
  unless it has a default.

All problems with the input are gathered into one ``422``:
``{"errors": [{"where": "body.price", "problem": "must be a number"}]}``.
``HTTPException`` becomes ``{"error": detail}``. A handler returns a dict,
list, str, dataclass or ``Response``; ``status=`` sets the success status.
Routing, responses and everything else come from pagi-tools.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from collections.abc import Callable
from typing import Any

from pagi.tools import HTTPException, JSONResponse, Request, Response, Router
from pagi.tools.handlers import to_response

__all__ = ["Invalid", "Mini"]

MISSING = inspect.Parameter.empty


class Invalid(Exception):
    """Input that does not fit; ``errors`` are ``(where, problem)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def convert(value: Any, hint: Any, where: str, from_text: bool) -> Any:
    """``value`` as ``hint``; ``from_text`` for path and query strings."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is list:
        if not isinstance(value, list):
            raise Invalid([(where, "must be a list")])
        return [
            convert(v, typing.get_args(hint)[0], f"{where}[{i}]", False)
            for i, v in enumerate(value)
        ]
    problem = {
        bool: "must be true or false",
        int: "must be an integer",
        float: "must be a number",
        str: "must be a string",
    }.get(hint)
    if problem is None:
        raise TypeError(f"mini cannot convert to {hint!r} (at {where})")
    if from_text and hint is bool:
        if value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
    elif from_text and hint is not str:
        try:
            return hint(value)
        except ValueError:
            pass
    elif isinstance(value, hint) and not (hint is not bool and isinstance(value, bool)):
        return value
    elif hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise Invalid([(where, problem)])


def from_body(cls: type, data: Any) -> Any:
    """Build dataclass ``cls`` from a JSON object, gathering every field's problem."""
    if not isinstance(data, dict):
        raise Invalid([("body", "must be a JSON object")])
    hints, values, errors = typing.get_type_hints(cls), {}, []
    fields = {f.name: f for f in dataclasses.fields(cls)}
    errors += [(f"body.{name}", "is not a known field") for name in data if name not in fields]
    for name, field in fields.items():
        if name not in data:
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                errors.append((f"body.{name}", "is required"))
            continue
        try:
            values[name] = convert(data[name], hints[name], f"body.{name}", False)
        except Invalid as exc:
            errors += exc.errors
    if errors:
        raise Invalid(errors)
    return cls(**values)


def plain(value: Any) -> Any:
    """Dataclasses (also inside lists) as dicts, ready for JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return [plain(v) for v in value] if isinstance(value, list) else value


class Mini:
    """The framework: a pagi-tools ``Router`` plus injection and validation."""

    def __init__(self) -> None:
        self.router = Router()
        self.providers: dict[Any, Callable[..., Any]] = {}

    def provide(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``func`` as the source of its return annotation's type."""
        self.providers[typing.get_type_hints(func)["return"]] = func
        return func

    def route(self, method: str, path: str, status: int = 200) -> Callable[[Any], Any]:
        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            async def endpoint(request: Request) -> Response:
                try:
                    result = await self.call(handler, request, {})
                except Invalid as exc:
                    errors = [{"where": w, "problem": p} for w, p in exc.errors]
                    return JSONResponse({"errors": errors}, status=422)
                except HTTPException as exc:
                    return JSONResponse({"error": exc.detail}, exc.status, headers=exc.headers)
                response = to_response(plain(result), handler)
                if status != 200 and response.status == 200:
                    response.status = status
                return response

            endpoint.__name__ = handler.__name__
            self.router.route(path, methods=[method])(endpoint)
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Any], Any]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Any], Any]:
        return self.route("POST", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Any], Any]:
        return self.route("DELETE", path, **options)

    async def call(self, func: Callable[..., Any], request: Request, made: dict[Any, Any]) -> Any:
        """Call ``func`` with what its parameters ask for; ``made`` caches provided values."""
        hints = typing.get_type_hints(func)
        kwargs, errors = {}, []
        for name, param in inspect.signature(func).parameters.items():
            hint = hints.get(name, str)
            try:
                kwargs[name] = await self.resolve(name, hint, param.default, request, made)
            except Invalid as exc:
                errors += exc.errors
        if errors:
            raise Invalid(errors)
        result = func(**kwargs)
        return await result if inspect.isawaitable(result) else result

    async def resolve(
        self, name: str, hint: Any, default: Any, request: Request, made: dict[Any, Any]
    ) -> Any:
        if hint is Request:
            return request
        if hint in self.providers:
            if hint not in made:
                made[hint] = await self.call(self.providers[hint], request, made)
            return made[hint]
        if dataclasses.is_dataclass(hint):
            try:
                data = json.loads(await request.body() or b"null")
            except ValueError:
                raise Invalid([("body", "is not valid JSON")]) from None
            return from_body(hint, data)
        if name in request.path_params:
            return convert(request.path_params[name], hint, f"path.{name}", True)
        if name in request.query_params:
            return convert(request.query_params[name], hint, f"query.{name}", True)
        if default is MISSING:
            raise Invalid([(f"query.{name}", "is required")])
        return default

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.router(scope, receive, send)
