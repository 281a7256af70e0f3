"""The documentation the tests check: README.md and the pages under docs/, which the README links to."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def doc_pages() -> list[Path]:
    """README.md first, then every page under docs/."""
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def docs_text() -> str:
    """The README and every docs/ page, as one text: what a reader can find, whichever page holds it."""
    return "\n".join(page.read_text(encoding="utf-8") for page in doc_pages())


def page_section(page: str, heading: str) -> str:
    """The text of one section of a docs/ page, from its heading to the next heading of the same level."""
    text = (ROOT / page).read_text(encoding="utf-8")
    start = text.index(heading + "\n")
    level = heading.split(" ", 1)[0]
    end = text.find(f"\n{level} ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]
