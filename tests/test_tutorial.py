"""The tutorial pages (docs/tutorial.md and its Portuguese translation): the translation keeps
the English page's programs and pictures. The programs run as written, with the long runs
shortened (SHORTER), as the pages' notebooks in a real kernel: test_notebooks.py."""

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["tutorial.md", "tutorial.pt-BR.md"]

# (what the page says, what the test runs): the same programs at a tiny size
SHORTER = [
    ("epochs=10_000", "epochs=20"),
    ("epochs=20_000", "epochs=20"),
    ("epochs=2000", "epochs=5"),
    ("epochs=1000", "epochs=2"),
    ("epochs=500", "epochs=2"),
    ("frames=40", "frames=2"),
    ("steps=5000", "steps=20"),
    ("E = 5000", "E = 2"),  # the four regimes' epochs
    ("every=500", "every=5"),  # the live plot's metric, within the 20 epochs
]


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


def without_comments(code: str) -> str:
    return "\n".join(re.sub(r"\s*#.*$", "", line) for line in code.splitlines())


def images(page: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (DOCS / page).read_text())


def test_translation_has_the_same_programs_and_pictures():
    english, portuguese = (python_blocks(p) for p in PAGES)
    assert [without_comments(b) for b in portuguese] == [without_comments(b) for b in english]
    assert images(PAGES[1]) == images(PAGES[0])
    for path in images(PAGES[0]):
        assert (DOCS / path).is_file(), path


def test_translation_uses_the_course_vocabulary():
    text = (DOCS / PAGES[1]).read_text()
    for word in [
        "época",
        "taxa de aprendizado",
        "função de perda",
        "retropropagação",
        "gradiente descendente",
        "minilote",
    ]:
        assert word in text, word
    assert "](tutorial.md)" in text  # links back to the English page


def test_readme_links_the_translation():
    readme = (DOCS.parent / "README.md").read_text()
    top = "\n".join(readme.splitlines()[:12])
    assert "Leia em português" in top and "docs/tutorial.pt-BR.md" in top
