"""Every relative link in the tracked Markdown files resolves: to a tracked file or folder, and a #anchor to a
heading of its target as GitHub names it.

Links are found with a regular expression rather than a Markdown parser: no parser is among the test
dependencies, and inline links, images and reference definitions are all these files use.
"""

from __future__ import annotations

import posixpath
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[`~]*[ \t]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^\n]*?[\"')])?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M)
_HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)=\"([^\"]+)\"")


def tracked() -> list[str]:
    """The repository's files as git knows them: a fresh clone has exactly these."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name]


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where brackets are code, not links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
    prose = _prose(text)
    found = [m.group(1) for m in _INLINE.finditer(prose)] + [m.group(1) for m in _REFERENCE.finditer(prose)]
    return [target[1:-1] if target.startswith("<") else target for target in found]


def anchors(text: str) -> set[str]:
    """GitHub's heading ids: the heading's text in lower case, punctuation dropped, spaces as hyphens; a repeated
    id gets -1, -2, ...; and explicit <a name=...> anchors."""
    seen: dict[str, int] = {}
    out = set(_HTML_ANCHOR.findall(text))
    for match in _HEADING.finditer(_FENCE.sub("", text)):
        heading = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1))  # a link's text, not its target
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def broken_links(doc: str, text: str, files: set[str], read: dict[str, str]) -> list[str]:
    """The relative links of `doc` (a path from the repository root, holding `text`) whose target is not among
    `files` (or a folder of them), or whose #anchor is not a heading of a Markdown target (`read` holds them)."""
    folders = {posixpath.dirname(name) for name in files}
    folders |= {posixpath.dirname(folder) for folder in folders}
    bad = []
    for link in links(text):
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", link) or link.startswith("//"):
            continue  # a URL (https:, mailto:): not checked offline
        path, _, anchor = link.partition("#")
        target = posixpath.normpath(posixpath.join(posixpath.dirname(doc), path)) if path else doc
        if target not in files and target.rstrip("/") not in folders:
            bad.append(f"{link} (no such file)")
        elif anchor and target.endswith(".md") and anchor not in anchors(read[target]):
            bad.append(f"{link} (no such heading)")
    return bad


DOCS = [name for name in tracked() if name.endswith(".md")]


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_resolve(doc: str) -> None:
    files = set(tracked())
    read = {name: (ROOT / name).read_text(encoding="utf-8") for name in DOCS}
    assert broken_links(doc, read[doc], files, read) == []


def test_the_check_finds_what_is_broken() -> None:
    """The checker itself: a missing file, a missing heading and a missing folder are reported; URLs, code and
    the headings and files that exist are not."""
    doc = "docs/guide.md"
    text = ("# Guide\n## Speed (version 0.1)\n## Speed (version 0.1)\nSee [speed](#speed-version-01), "
            "[again](#speed-version-01-1), [gone](#nowhere), [up](../README.md#setup), [pic](img/a.png "
            '"A title"), [dir](img/), [no dir](nope/), [web](https://example.org/x.md), '
            "`[code](missing.md)`.\n\n```\n[fenced](missing.md)\n```\n[ref]: other.md\n")
    files = {doc, "README.md", "docs/img/a.png"}
    read = {doc: text, "README.md": "# Title\n\n## Setup\n"}
    assert broken_links(doc, text, files, read) == ["#nowhere (no such heading)", "nope/ (no such file)",
                                                    "other.md (no such file)"]


def test_the_docs_have_links_to_check() -> None:
    """A pattern that matched nothing would pass every file; the README and the record link to each other."""
    assert "benchmarks/README.md" in links((ROOT / "README.md").read_text(encoding="utf-8"))
    assert any(link.startswith("results/") for link in links((ROOT / "benchmarks/README.md").read_text()))
