"""Write the tutorial's notebooks from its Markdown pages, so the two never drift:
``docs/tutorial.md`` -> ``docs/tutorial.ipynb`` and ``docs/tutorial.pt-BR.md`` ->
``docs/tutorial.pt-BR.ipynb``. Each ```` ```python ```` block becomes a code cell; the text
between them (other code blocks, shell sessions and program output included) becomes a
Markdown cell. The output is deterministic (fixed cell ids, sorted keys), and the tests
check that the notebooks in the repository are what this script writes.

    python docs/make_notebooks.py           # rewrite the notebooks
    python docs/make_notebooks.py --check   # exit 1 if one is out of date
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PAGES = ["tutorial.md", "tutorial.pt-BR.md"]
_PYTHON = re.compile(r"^```python\n(.*?)^```\n?", flags=re.S | re.M)


def _lines(text: str) -> list[str]:
    """Jupyter's multi-line string: a list of lines, each with its newline but the last."""
    lines = text.splitlines(keepends=True)
    if lines:
        lines[-1] = lines[-1].rstrip("\n")
    return lines


def cells(markdown: str) -> list[dict]:
    """The notebook cells of a Markdown page, in order."""
    parts: list[tuple[str, str]] = []
    at = 0
    for match in _PYTHON.finditer(markdown):
        parts += [("markdown", markdown[at : match.start()]), ("code", match.group(1))]
        at = match.end()
    parts.append(("markdown", markdown[at:]))
    made: list[dict] = []
    for kind, text in parts:
        text = text.strip("\n")
        if not text.strip():
            continue
        cell: dict = {"cell_type": kind, "id": f"{kind}-{len(made) + 1}", "metadata": {}}
        cell["source"] = _lines(text)
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        made.append(cell)
    return made


def notebook(markdown: str) -> str:
    """The ``.ipynb`` text (nbformat 4.5) of a Markdown page."""
    nb = {
        "cells": cells(markdown),
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def outdated(docs: Path = DOCS) -> list[str]:
    """The notebooks that differ from what their pages make."""
    return [
        page
        for page in PAGES
        if not (docs / page).with_suffix(".ipynb").is_file()
        or (docs / page).with_suffix(".ipynb").read_text(encoding="utf-8")
        != notebook((docs / page).read_text(encoding="utf-8"))
    ]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = outdated()
        for page in stale:
            print(f"{Path(page).with_suffix('.ipynb')} is out of date: run {__file__}")
        return 1 if stale else 0
    for page in PAGES:
        target = (DOCS / page).with_suffix(".ipynb")
        target.write_text(notebook((DOCS / page).read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote {target.relative_to(DOCS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
