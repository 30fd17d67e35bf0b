"""The demo patient guide PDFs (printed by Chromium from content/knowledge/source/) extract
with the source's words whole and its paragraphs on their pages: patients see these passages
quoted, so a kerning gap read as a space ("af ter", "for m") is a visible defect."""

import html.parser
import re
from pathlib import Path
from typing import List, Tuple

import pytest

from clinic.knowledge.ingest import extract

DIRECTORY = Path(__file__).resolve().parents[1] / "content" / "knowledge"


class _Paragraphs(html.parser.HTMLParser):
    """(page, text) of every <p>; each <section> of the source is printed as one page."""

    def __init__(self) -> None:
        super().__init__()
        self.page = 0
        self.paragraphs: List[Tuple[str, str]] = []
        self._text: List[str] = []
        self._in_p = False

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.page += 1
        elif tag == "p":
            self._in_p, self._text = True, []

    def handle_endtag(self, tag):
        if tag == "p":
            self._in_p = False
            self.paragraphs.append((f"page {self.page}", re.sub(r"\s+", " ", "".join(self._text)).strip()))

    def handle_data(self, data):
        if self._in_p:
            self._text.append(data)


def source_paragraphs(language: str) -> List[Tuple[str, str]]:
    parser = _Paragraphs()
    parser.feed((DIRECTORY / "source" / f"patient-guide.{language}.html").read_text(encoding="utf-8"))
    return parser.paragraphs


def extracted(language: str, extract_function=extract) -> List[Tuple[str, str]]:
    passages = extract_function((DIRECTORY / f"patient-guide.{language}.pdf").read_bytes(), "pdf")
    return [(p.locator, p.text) for p in passages]


def words(text: str) -> List[str]:
    return re.findall(r"\w+(?:-\w+)*", text)


def check_words_whole(extract_function=extract) -> None:
    source_words = {w for _, text in source_paragraphs("en") for w in words(text)}
    extracted_text = " ".join(text for _, text in extracted("en", extract_function))
    extracted_words = set(words(extracted_text))
    assert not extracted_words - source_words, "pieces of words, not in the source"
    assert not source_words - extracted_words, "source words not found whole"


def check_paragraphs_and_pages(language: str, extract_function=extract) -> None:
    assert extracted(language, extract_function) == source_paragraphs(language)


def test_english_guide_has_every_source_word_whole_and_no_pieces():
    check_words_whole()
    text = " ".join(t for _, t in extracted("en"))
    assert "after a consultation" in text and "feedback form at reception" in text


@pytest.mark.parametrize("language", ["en", "ru", "zh"])
def test_guide_passages_are_the_source_paragraphs_on_their_pages(language):
    assert len(source_paragraphs(language)) == 15
    check_paragraphs_and_pages(language)
