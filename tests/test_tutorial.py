"""The tutorial pages (docs/tutorial.md and its Portuguese translation) run as written, with
the long runs shortened; the translation keeps the English page's programs and pictures."""

import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

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
]


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


def without_comments(code: str) -> str:
    return "\n".join(re.sub(r"\s*#.*$", "", line) for line in code.splitlines())


def images(page: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (DOCS / page).read_text())


# the regimes block trains one loss on batches of 21, 1, 7 and 3 points, as the page
# says; the engine rightly warns that each new batch size compiles the step again
@pytest.mark.filterwarnings("ignore:train. argument 1 of batch:UserWarning")
def test_tutorial_programs_run(tmp_path, monkeypatch, capsys):
    # The Portuguese page's programs are the English page's, comments aside (the next test
    # checks that), so running them once runs both pages (about a minute on 2 cores).
    page = PAGES[1]
    monkeypatch.chdir(tmp_path)  # the programs save pictures into the working folder
    scope: dict = {"E": 1}  # the regimes' epoch count, left to the reader on the page
    blocks = python_blocks(page)
    assert len(blocks) == 10
    for i, block in enumerate(blocks):
        for long, short in SHORTER:
            block = block.replace(long, short)
        exec(compile(block, f"{page}, block {i + 1}", "exec"), scope)
        plt.close("all")
    # the programs did what the page says: pictures written, a classifier that learned
    for name in ["neuron.png", "train.gif", "seed_loss.png", "fit2d.png"]:
        assert (tmp_path / name).stat().st_size > 1000, name
    assert 0.0 <= scope["accuracy"] <= 1.0
    assert "Adam(eta=0.01)" in capsys.readouterr().out  # the comparison's table was printed


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
