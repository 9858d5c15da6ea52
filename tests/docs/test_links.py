"""README.md and docs/*.md: every relative link and anchor resolves, and every command has a page."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from padlens.cli import _register, cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=[\"']([^\"']+)[\"']", re.IGNORECASE)


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.split("\n"), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lowercased, punctuation dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images keep their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a page offers: its headings' slugs (repeats numbered -1, -2 ...) and HTML ids."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path):
    """(line number, target) of every link and image on a page, code spans and blocks left out."""
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        definition = REFERENCE_DEF.match(line)
        if definition:
            yield number, definition.group(1)
            continue
        for target in INLINE_LINK.findall(INLINE_CODE.sub("", line)):
            yield number, target


def broken(path: Path, root: Path = ROOT) -> list[str]:
    """What does not resolve on ``path``: a missing file, a file outside the checkout, a missing anchor."""
    problems = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not dest.is_relative_to(root.resolve()):
            problems.append(f"{where} leaves the checkout")
        elif not dest.exists():
            problems.append(f"{where} names no file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where} names no heading of {dest.name}")
    return problems


@pytest.mark.parametrize(("heading", "anchor"), [
    ("Install", "install"),
    ("`padlens inspect`: what the pads hold, layer by layer", "padlens-inspect-what-the-pads-hold-layer-by-layer"),
    ("Security: pointing padlens at a stranger's model", "security-pointing-padlens-at-a-strangers-model"),
    ("embed against sentence-transformers, a bare loop and fastembed (target 5)",
     "embed-against-sentence-transformers-a-bare-loop-and-fastembed-target-5"),
    ("(a) throughput: three whole processes, interleaved, 3 rounds, median",
     "a-throughput-three-whole-processes-interleaved-3-rounds-median"),
    ("`padlens demo [-o DIR]`", "padlens-demo--o-dir"),
    ("pad_pad_cos per layer", "pad_pad_cos-per-layer"),
    ("**Bold** and [a link](x.md)", "bold-and-a-link"),
])
def test_a_heading_gets_githubs_anchor(heading, anchor):
    assert slug(heading) == anchor


def test_a_repeated_heading_gets_a_numbered_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Results\n\n## Results\n\n```\n# not a heading\n```\n", encoding="utf-8")
    assert anchors(page) == {"results", "results-1"}


def test_a_missing_file_a_missing_anchor_and_a_path_outside_are_caught(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n", encoding="utf-8")
    page = tmp_path / "docs" / "page.md"
    page.write_text("# Page\n\n[ok](other.md#other-page) [self](#page) [web](https://example.com/x#y)\n"
                    "`[code](nowhere.md)` [gone](nowhere.md) [bad anchor](other.md#nope)\n"
                    "![img](../../outside.png)\n\n```\n[fenced](nowhere.md)\n```\n"
                    "[ref]: missing.md\n", encoding="utf-8")
    problems = broken(page, root=tmp_path)
    assert problems == ["docs/page.md:4: nowhere.md names no file",
                        "docs/page.md:4: other.md#nope names no heading of other.md",
                        "docs/page.md:5: ../../outside.png leaves the checkout",
                        "docs/page.md:10: missing.md names no file"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    assert broken(page) == []


def test_the_readme_and_the_docs_index_link_every_page():
    linked = {(ROOT / "docs" / Path(t.partition("#")[0]).name).resolve()
              for page in (ROOT / "README.md", DOCS / "index.md") for _, t in links(page)
              if t.partition("#")[0].endswith(".md")}
    assert [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked] == []


def test_every_command_in_padlens_help_has_a_docs_page():
    _register()
    commands = list(cli.commands)
    assert {"export", "inspect", "audit", "embed", "probe", "quantize", "demo"} <= set(commands)
    assert [name for name in commands if not (DOCS / f"{name}.md").is_file()] == []
