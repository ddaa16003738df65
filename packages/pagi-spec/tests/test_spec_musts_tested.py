"""Every MUST and MUST NOT of the specification is exercised by a test.

The list of MUST ids lives in the repository (``docs/spec/must-ids.txt``), so
this test never depends on anything outside the clone. When the research
digest it was taken from sits beside the clone
(``../shared/research/spec-digest.md``), the list is checked against it too.

A test "cites" a requirement by naming it in its name, docstring or a comment:
``R-CK-2``, ``R_CK_2`` (in a test name), ``R_H2_10_11`` (several numbers of
one area) or a range ``R-H2-1..6``. An id no test cites fails the test unless
it is in :data:`ALLOWED_UNCITED` with the reason no test of ours can exercise
it; an allow-listed id that a test now cites fails too, so the list only
shrinks.
"""

from __future__ import annotations

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
MUST_LIST = REPO / "docs" / "spec" / "must-ids.txt"
DIGEST = REPO.parent / "shared" / "research" / "spec-digest.md"
TEST_ROOTS = [
    REPO / "packages" / name / "tests" for name in ("pagi-spec", "pagi-server", "pagi-tools")
]
EXAMPLES = REPO / "examples"

pytestmark = pytest.mark.skipif(not MUST_LIST.is_file(), reason="docs/spec is not in this checkout")

#: MUST ids no test cites, each with the reason it cannot be exercised by one.
ALLOWED_UNCITED: dict[str, str] = {
    "R-RUN-7": (
        "a rule for code that calls a runner (put cleanup in atexit, not after run()); "
        "it constrains deployment scripts, not anything this repository can observe"
    ),
    "R-HERR-8": (
        "a rule on what application authors may rely on (the server's reason phrases and "
        "error bodies); the toolkit never reads a server-made response, so there is no "
        "behaviour of ours to exercise"
    ),
}

_CITATION = re.compile(r"(?<![A-Za-z0-9])R[-_]([A-Z0-9]+)[-_](\d+(?:_\d+)*)(?:\.\.(\d+))?")
_DIGEST_ENTRY = re.compile(r"^- \*\*(R-[A-Z0-9]+-\d+)\*\*(.*)$", re.M)


def cited_ids(text: str) -> set[str]:
    """The requirement ids a piece of source text names, ranges expanded."""
    ids: set[str] = set()
    for area, numbers, last in _CITATION.findall(text):
        found = [int(n) for n in numbers.split("_")]
        if last:
            found.extend(range(found[-1], int(last) + 1))
        ids.update(f"R-{area}-{n}" for n in found)
    return ids


def must_ids() -> set[str]:
    lines = MUST_LIST.read_text(encoding="utf-8").splitlines()
    return {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}


def _test_files() -> list[pathlib.Path]:
    files = [path for root in TEST_ROOTS for path in root.rglob("*.py")]
    files.extend(EXAMPLES.rglob("*.py"))
    return files


def _sort_key(rid: str) -> tuple[str, int]:
    area, _, number = rid.rpartition("-")
    return area, int(number)


def test_citation_forms() -> None:
    assert cited_ids("R-CK-2") == {"R-CK-2"}
    assert cited_ids("def test_x_R_H2_10_11()") == {"R-H2-10", "R-H2-11"}
    assert cited_ids("R-H2-1..3") == {"R-H2-1", "R-H2-2", "R-H2-3"}
    assert cited_ids("XR-CK-2 PR_CK_2") == set()


def test_every_must_is_cited_by_a_test() -> None:
    cited: set[str] = set()
    for path in _test_files():
        if path.resolve() == pathlib.Path(__file__).resolve():
            continue  # the allow-list below names ids without testing them
        cited |= cited_ids(path.read_text(encoding="utf-8"))
    musts = must_ids()
    uncited = sorted(musts - cited - ALLOWED_UNCITED.keys(), key=_sort_key)
    assert not uncited, f"{len(uncited)} MUST ids no test cites: {' '.join(uncited)}"
    stale = sorted((ALLOWED_UNCITED.keys() & cited) | (ALLOWED_UNCITED.keys() - musts))
    assert not stale, f"allow-listed ids that are now cited or no longer MUSTs: {stale}"


def test_the_in_repo_list_is_in_the_prose() -> None:
    prose = "".join(p.read_text(encoding="utf-8") for p in MUST_LIST.parent.glob("*.md"))
    missing = sorted(must_ids() - cited_ids(prose), key=_sort_key)
    assert not missing, f"MUST ids the docs/spec prose never mentions: {missing}"


@pytest.mark.skipif(not DIGEST.is_file(), reason="no research digest beside the clone")
def test_the_in_repo_list_matches_the_digest() -> None:
    digest = DIGEST.read_text(encoding="utf-8")
    from_digest = {
        rid for rid, rest in _DIGEST_ENTRY.findall(digest) if "MUST" in rest.split(":")[0]
    }
    assert must_ids() == from_digest
