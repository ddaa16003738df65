"""The prose specification in docs/spec/ stays consistent with pagi.spec.

Requirement ids cited by the code and the tests must appear in the prose,
every open question A-1..A-45 has a decision, versions agree with the
constants, and links between the documents resolve.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from pagi.spec import CORE_VERSION, LIFESPAN_SPEC_VERSION, RUNNER_SPEC_VERSION, WWW_SPEC_VERSION

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = PACKAGE_ROOT.parents[1] / "docs" / "spec"
DOCUMENTS = [
    "README.md",
    "spec.md",
    "www.md",
    "lifespan.md",
    "extensions.md",
    "tls.md",
    "server.md",
    "wsgi.md",
]

pytestmark = pytest.mark.skipif(not DOCS.is_dir(), reason="docs/spec is not in this checkout")

_ID = re.compile(r"R-[A-Z0-9]+-\d+")
_RANGE = re.compile(r"(R-[A-Z0-9]+)-(\d+)\.\.(\d+)")


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _cited(text: str) -> set[str]:
    ids = set(_ID.findall(text))
    for prefix, first, last in _RANGE.findall(text):
        ids.update(f"{prefix}-{n}" for n in range(int(first), int(last) + 1))
    return ids


def test_all_documents_exist() -> None:
    for name in DOCUMENTS:
        assert (DOCS / name).is_file(), name


def test_ids_cited_by_code_and_tests_are_in_the_prose() -> None:
    prose = set().union(*(_cited(_read(name)) for name in DOCUMENTS))
    sources = [*PACKAGE_ROOT.glob("src/pagi/spec/*.py"), *PACKAGE_ROOT.glob("tests/*.py")]
    for path in sources:
        missing = _cited(path.read_text(encoding="utf-8")) - prose
        assert not missing, f"{path.name} cites ids the prose never mentions: {sorted(missing)}"


def test_every_open_question_is_decided() -> None:
    rows: set[int] = set()
    for name in DOCUMENTS:
        rows.update(int(n) for n in re.findall(r"^\| A-(\d+) \|", _read(name), re.M))
    assert rows == set(range(1, 46))


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("spec.md", CORE_VERSION),
        ("www.md", WWW_SPEC_VERSION),
        ("lifespan.md", LIFESPAN_SPEC_VERSION),
        ("server.md", RUNNER_SPEC_VERSION),
    ],
)
def test_document_versions_match_the_constants(name: str, version: str) -> None:
    assert f"Version **{version}**" in _read(name)


def _slug(heading: str) -> str:
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(name: str) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", _read(name), re.M)}


@pytest.mark.parametrize("name", DOCUMENTS)
def test_links_between_documents_resolve(name: str) -> None:
    for target, anchor in re.findall(r"\]\(([\w./-]*\.md|)(?:#([\w-]+))?\)", _read(name)):
        if target.startswith(".."):
            assert (DOCS / target).resolve().exists(), target
            continue
        document = target or name
        assert (DOCS / document).is_file(), f"{name}: broken link to {document}"
        if anchor:
            assert anchor in _anchors(document), f"{name}: no heading #{anchor} in {document}"
