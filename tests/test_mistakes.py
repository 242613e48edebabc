"""Every row of the mistake catalogue (tests/mistakes_table.py, docs/mistakes.md): the mistake
raises (or warns) with a message naming the value, what was expected and the fix; rows marked
"works" are accepted and give the right result."""

from __future__ import annotations

import re
import warnings

import pytest
from mistakes_table import ROWS

IDS = [f"{i:02d}-{r.category.split()[0]}" for i, r in enumerate(ROWS)]


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_mistake(row):
    if row.kind is None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = row.run()
        assert row.check(out), row.mistake
        return
    if isinstance(row.kind, type) and issubclass(row.kind, Warning):
        with pytest.warns(row.kind, match=row.says):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    row.run()
                except Exception:
                    pass  # a warning row may also fail later; the warning is what counts
        return
    with pytest.raises(row.kind) as e:
        row.run()
    text = str(e.value)
    assert re.search(row.says, text, re.S), f"{row.mistake}: message was\n{text}"
    assert "Traceback" not in text


def test_docs_list_every_row():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "mistakes.md").read_text()
    missing = [r.mistake for r in ROWS if r.mistake.replace("|", "\\|") not in doc]
    assert not missing, f"regenerate docs/mistakes.md (python tests/mistakes_table.py): {missing}"
    assert f"{len(ROWS)} mistakes in all." in doc
