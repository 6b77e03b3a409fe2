"""Every relative link in README.md, docs/*.md, benchmarks/RESULTS.md and benchmarks/notes/*.md
names a file or folder that exists (no network: web links are skipped)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "RESULTS.md",
         *sorted((ROOT / "benchmarks" / "notes").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)  # fenced code blocks, kept line for line
CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target "title")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)  # [label]: target
EXTERNAL = re.compile(r"^([a-z][a-z0-9+.-]*:|//|#)", re.I)  # a scheme (https:, mailto:), or an anchor alone


def _blank(match: re.Match[str]) -> str:
    """The match with everything but its newlines blanked, so line numbers stay right."""
    return re.sub(r"[^\n]", " ", match.group(0))


def relative_links(text: str) -> list[tuple[int, str]]:
    """(line, target without its #anchor) of each relative link outside code, in order."""
    text = CODE_SPAN.sub(_blank, FENCE.sub(_blank, text))
    found = [(m.start(), m.group(1)) for pattern in (INLINE, REFERENCE) for m in pattern.finditer(text)]
    links = []
    for start, target in sorted(found):
        if EXTERNAL.match(target):
            continue
        links.append((text.count("\n", 0, start) + 1, target.split("#", 1)[0]))
    return links


def test_relative_links_are_found_and_code_is_skipped():
    text = (
        "See [the guide](docs/a.md#setup) and ![a figure](img/b.png \"title\").\n"
        "[`report`](../c.md), [web](https://example.org/x.md), [top](#recipes), <mailto:x@y>\n"
        "`[not a link](d.md)` and\n"
        "```\n[nor this](e.md)\n```\n"
        "[ref]: notes/f.md\n"
    )
    assert relative_links(text) == [(1, "docs/a.md"), (1, "img/b.png"), (2, "../c.md"), (7, "notes/f.md")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    links = relative_links(page.read_text(encoding="utf-8"))
    if page.name == "README.md":  # the pattern still finds the links the README is known to hold
        assert {"docs/errors.md", "benchmarks/RESULTS.md", "docs/images/report.png"} <= {t for _, t in links}
    missing = [f"{page.relative_to(ROOT)}:{line}: {target}" for line, target in links
               if not (page.parent / target).exists()]
    assert not missing, "links to files that do not exist:\n" + "\n".join(missing)
