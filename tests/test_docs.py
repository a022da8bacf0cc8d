"""The product documents stay product documents: a README a scientist reads in two minutes, no development
history, small flat model cards without machine paths, and links that resolve."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PRODUCT_TEXTS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *DOCS]
CARDS = sorted((ROOT / "weights").glob("*.json"))

README_MAX_LINES = 250
README_MAX_BYTES = 16_000
BENCHMARKS_MAX_BYTES = 40 * 1024
CARD_MAX_BYTES = 8 * 1024

HISTORY = re.compile(
    r"\bsessions? \d+|\bin the run before\b|\bprevious (run|session)\b|\bthis session\b|\blast session\b"
    r"|\bearlier sessions?\b|\bnext session\b|\bsession's\b",
    re.IGNORECASE,
)
ABSOLUTE_PATH = re.compile(r"(?:^|[\s\"'=(:])(/(?:root|tmp|home|work|Users|mnt|scratch|data|opt|var)/\S*|[A-Za-z]:\\\S+)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def test_readme_is_short():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert len(text.encode()) <= README_MAX_BYTES
    assert max(len(line) for line in text.splitlines()) <= 300, "a README line reads like a log entry"


def test_readme_starts_with_pitch_screenshot_and_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_command = text.index("pip install torch==2.13.0 && pip install . && gama-ir demo")
    assert text.index("docs/images/widget.png") < first_command < text.index("python3 -m pip install tox && python3 -m tox")
    assert text.index("python3 -m pip install tox && python3 -m tox") < text.index("\n## ")


def test_benchmarks_doc_is_bounded():
    assert len((ROOT / "docs" / "benchmarks.md").read_bytes()) <= BENCHMARKS_MAX_BYTES


@pytest.mark.parametrize("path", PRODUCT_TEXTS, ids=lambda p: p.name)
def test_no_development_history(path):
    found = [m.group(0) for m in HISTORY.finditer(path.read_text(encoding="utf-8"))]
    assert not found, f"{path.name} recounts development history: {found[:5]}"


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    for m in LINK.finditer(text):
        target = m.group(1) or m.group(2)
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.exists(), f"{path.name}: link {target!r} does not resolve"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{path.name}: link {target!r}: no heading #{anchor} in {linked.name}"


def test_shipped_cards_are_small_flat_and_free_of_machine_paths():
    from napari_gama_ir import list_models

    assert CARDS
    names = {card.name for card in list_models()}
    for path in CARDS:
        text = path.read_text(encoding="utf-8")
        assert len(text.encode()) <= CARD_MAX_BYTES, f"{path.name} is {len(text.encode())} bytes"
        assert not ABSOLUTE_PATH.findall(text), f"{path.name} holds machine paths: {ABSOLUTE_PATH.findall(text)[:3]}"
        assert not HISTORY.search(text), f"{path.name} recounts development history"
        data = json.loads(text)
        assert data["format_version"] == 2 and "previous_phase" not in json.dumps(data)
        assert not {"run_note", "base_note", "weights_note"} & set(data["training"])
        assert path.stem in names, f"{path.name} does not load through list_models()"


def test_development_code_edits_no_import_path():
    offenders = [str(p.relative_to(ROOT)) for folder in ("scripts", "benchmarks") for p in (ROOT / folder).rglob("*")
                 if p.suffix in (".py", ".sh") and re.search(r"sys\.path\.(insert|append)|PYTHONPATH=", p.read_text(encoding="utf-8"))]  # fmt: skip
    assert not offenders, f"import paths added in {offenders}: run them as python -m from the repository root"
