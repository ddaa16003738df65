"""A bookshelf API on ``mini``, the framework in ``mini.py``.

Handlers declare what they need and ``mini`` supplies it: ``Shelf`` and
``User`` come from providers, ``NewBook`` from the JSON body, ``book_id``
from the path, ``author`` and ``limit`` from the query string.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from pagi.tools import HTTPException, Request, Response

sys.path.insert(0, os.path.dirname(__file__))  # run as a file: find mini.py next to it
from mini import Invalid, Mini

app = Mini()
TOKENS = {"ann-token": "ann", "bob-token": "bob"}


@dataclass
class NewBook:
    title: str
    author: str
    year: int
    tags: list[str] = field(default_factory=list)


@dataclass
class Book(NewBook):
    id: int = 0
    added_by: str = ""


@dataclass
class User:
    name: str


class Shelf:
    def __init__(self) -> None:
        self.books: dict[int, Book] = {}

    def find(self, book_id: int) -> Book:
        if book_id not in self.books:
            raise HTTPException(404, f"no book {book_id}")
        return self.books[book_id]


SHELF = Shelf()


@app.provide
def shelf() -> Shelf:
    return SHELF


@app.provide
async def current_user(request: Request) -> User:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or token not in TOKENS:
        raise HTTPException(
            401, "send Authorization: Bearer <token>", {"www-authenticate": "Bearer"}
        )
    return User(TOKENS[token])


@app.get("/books")
async def list_books(shelf: Shelf, author: str | None = None, limit: int = 10) -> list[Book]:
    found = [b for b in shelf.books.values() if author is None or b.author == author]
    return found[:limit]


@app.get("/books/{book_id}")
async def show_book(book_id: int, shelf: Shelf) -> Book:
    return shelf.find(book_id)


@app.post("/books", status=201)
async def add_book(new: NewBook, user: User, shelf: Shelf) -> Book:
    problems = [("body.title", "must not be blank")] if not new.title.strip() else []
    if not 0 < new.year <= 2100:
        problems.append(("body.year", "must be from 1 to 2100"))
    if problems:
        raise Invalid(problems)  # the same 422 as the checks mini makes itself
    book = Book(**vars(new), id=max(shelf.books, default=0) + 1, added_by=user.name)
    shelf.books[book.id] = book
    return book


@app.delete("/books/{book_id}")
async def remove_book(book_id: int, user: User, shelf: Shelf) -> Response:
    del shelf.books[shelf.find(book_id).id]
    return Response(status=204)
