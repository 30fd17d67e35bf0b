"""From an uploaded file to passages with their source: PDF (pypdf checks it, pdfminer.six reads
its text), HTML (trafilatura),
Markdown and plain text.

A passage is a paragraph (a few sentences on one subject), kept exactly as written so the
assistant can quote it; its locator says where it is ("page 3" in a PDF, the heading it sits
under elsewhere). Very long paragraphs are cut at sentence ends so a quote stays readable on
a phone.

Scanned PDFs (pages that are pictures, with no text layer) are refused: recognising text in
images (OCR) would put unreviewable guesses in front of patients, and no OCR engine with its
models ships as a package here. The clinic uploads the original text PDF, or the text itself.
"""

from __future__ import annotations

import dataclasses
import io
import re
from typing import List, Optional

MAX_PASSAGE_CHARS = 700  # about what a phone shows without scrolling far
MIN_TEXT_CHARS_PER_PAGE = 25  # below this on average, a PDF has no usable text layer
KINDS = ("pdf", "html", "markdown", "text")
_LIGATURES = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
                            "\ufb05": "st", "\ufb06": "st"})
_CJK = r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]"
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")


class IngestError(ValueError):
    """The file cannot become passages; the message is for the clinic's staff."""


@dataclasses.dataclass(frozen=True)
class RawPassage:
    locator: str  # "page 3" or a heading
    text: str


def kind_of(name: str, data: bytes) -> str:
    """The kind of an upload, from its first bytes first (a name can lie), then its name."""
    head = data[:1024].lstrip().lower()
    if data[:5] == b"%PDF-":
        return "pdf"
    if head.startswith(b"<!doctype html") or head.startswith(b"<html") or b"<body" in head:
        return "html"
    lowered = name.lower()
    if lowered.endswith((".md", ".markdown")):
        return "markdown"
    if lowered.endswith((".html", ".htm")):
        return "html"
    if lowered.endswith(".pdf"):
        return "pdf"
    return "text"


def extract(data: bytes, kind: str) -> List[RawPassage]:
    if kind == "pdf":
        passages = _pdf(data)
    elif kind == "html":
        passages = _html(data)
    elif kind == "markdown":
        passages = _markdown(_decode(data))
    elif kind == "text":
        passages = _blocks(_decode(data), default_locator="text")
    else:
        raise IngestError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    if not passages:
        raise IngestError("No text could be extracted from this file.")
    return passages


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IngestError("The file is not UTF-8 text. Save it as UTF-8 and upload it again.") from None


def _pdf(data: bytes) -> List[RawPassage]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise IngestError("This PDF is password-protected. Upload an unprotected copy.")
        page_count = len(reader.pages)
    except PdfReadError:
        raise IngestError("This file is not a readable PDF.") from None
    pages = _pdf_pages(data)
    letters = sum(len(re.sub(r"\s", "", text)) for text in pages)
    if not page_count or letters < MIN_TEXT_CHARS_PER_PAGE * max(page_count, len(pages)):
        raise IngestError(
            "This PDF has no text layer: it looks like a scan or photos of pages. The assistant "
            "only quotes text it can read exactly, and does not guess text from images. Upload the "
            "original PDF exported from the word processor, or the text as a Markdown or text file.")
    passages = []
    for number, text in enumerate(pages, start=1):
        passages.extend(_blocks(_unwrap_pdf(text), default_locator=f"page {number}", locator_fixed=True))
    return passages


def _pdf_pages(data: bytes) -> List[str]:
    """The text of each page, its paragraphs (pdfminer's text boxes) separated by blank lines.

    Not pypdf's extract_text: PDFs printed by Chromium position kerned glyph runs
    separately, and pypdf reads a kerning gap as a space in both of its modes ("af ter",
    "for m" in the patient guide) or, in plain mode, loses the paragraph breaks. pdfminer.six
    groups glyphs into words by their actual distance (LAParams.word_margin) and lines into
    boxes, one per paragraph."""
    import logging

    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTTextContainer
    from pdfminer.pdfparser import PDFSyntaxError
    from pdfminer.pdftypes import PDFException
    from pdfminer.psexceptions import PSException

    logging.getLogger("pdfminer").setLevel(logging.ERROR)  # font-descriptor warnings, not errors
    pages = []
    try:
        for layout in extract_pages(io.BytesIO(data), laparams=LAParams()):
            boxes = [element.get_text().strip("\n") for element in layout if isinstance(element, LTTextContainer)]
            pages.append("\n\n".join(box for box in boxes if box.strip()))
    except (PDFSyntaxError, PDFException, PSException):
        raise IngestError("This file is not a readable PDF.") from None
    return pages


def _unwrap_pdf(text: str) -> str:
    """Collapse runs of spaces, undo typographic ligatures (ﬁ → fi) and rejoin a hyphenated
    word the line broke after its hyphen (онлайн-|запись → онлайн-запись); nothing else is
    changed (NFKC would also turn Chinese full-width punctuation into ASCII)."""
    lines = [re.sub(r"[ \t]{2,}", " ", line.translate(_LIGATURES)).strip() for line in text.splitlines()]
    return re.sub(r"(?<=\w-)\n(?=\w)", "", "\n".join(lines))


def _heading_like(line: str) -> bool:
    return len(line) <= 60 and not re.search(r"[.!?。！？,，;；]$", line)


def _html(data: bytes) -> List[RawPassage]:
    import trafilatura

    text = trafilatura.extract(data.decode("utf-8", "replace") if isinstance(data, bytes) else data,
                               output_format="markdown", include_tables=False, include_links=False,
                               include_comments=False, favor_precision=False)
    if not text:
        raise IngestError("No readable text was found on this page.")
    return _markdown(text)


def _markdown(text: str) -> List[RawPassage]:
    passages: List[RawPassage] = []
    heading = ""
    block: List[str] = []

    def flush() -> None:
        if block:
            passages.extend(_blocks("\n".join(block), default_locator=heading or "text"))
            block.clear()

    for line in text.splitlines():
        match = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            flush()
            heading = _plain(match.group(1))
            continue
        block.append(line)
    flush()
    return passages


def _plain(text: str) -> str:
    """Markdown emphasis and links as the words a reader sees."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(\*\*|__|\*|_|`)(\S(?:.*?\S)?)\1", r"\2", text)
    return text.strip()


def _blocks(text: str, default_locator: str, locator_fixed: bool = False) -> List[RawPassage]:
    """Paragraphs (separated by blank lines) as passages. Outside PDFs a heading-like line
    before paragraphs becomes their locator; in a PDF it stays with the page number."""
    passages: List[RawPassage] = []
    locator = default_locator
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", line).strip() for line in paragraph.splitlines()]
        joined = _join(lines)
        joined = _plain(joined)
        if not joined:
            continue
        if _heading_like(joined) and len(joined.split()) <= 8:
            if not locator_fixed:
                locator = joined
            continue  # a heading alone answers nothing
        for piece in _cut(joined):
            passages.append(RawPassage(locator, piece))
    return passages


def _join(lines: List[str]) -> str:
    out = ""
    for line in lines:
        if not line:
            continue
        # Chinese is written without spaces: a line break next to it joins with none.
        if out and not (re.search(_CJK + "$", out) or re.match(_CJK, line)):
            out += " "
        out += line
    return out


def sentences(text: str) -> List[str]:
    return [s for s in (part.strip() for part in _SENTENCE_END.split(text)) if s]


def _cut(paragraph: str) -> List[str]:
    if len(paragraph) <= MAX_PASSAGE_CHARS:
        return [paragraph]
    pieces, current = [], ""
    for sentence in sentences(paragraph):
        if current and len(current) + len(sentence) + 1 > MAX_PASSAGE_CHARS:
            pieces.append(current)
            current = ""
        current = f"{current} {sentence}".strip() if not re.match(r"[\u3400-\u9fff]", sentence) else current + sentence
    if current:
        pieces.append(current)
    return pieces


def fetch_page(url: str, timeout: float = 15.0, max_bytes: int = 5_000_000) -> bytes:
    """A page the clinic lists, fetched once by the clinic's server at upload time (never at
    answer time: what patients are told must be what was reviewed)."""
    import urllib.error
    import urllib.request

    if not re.match(r"^https?://", url):
        raise IngestError("A page address must start with http:// or https://")
    request = urllib.request.Request(url, headers={"User-Agent": "clinic-knowledge-fetch/1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) checked above
            if response.status != 200:
                raise IngestError(f"The page answered HTTP {response.status}.")
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as error:
        raise IngestError(f"The page answered HTTP {error.code}.") from None
    except (urllib.error.URLError, OSError) as error:
        raise IngestError(f"The page could not be fetched ({type(error).__name__}).") from None
    if len(data) > max_bytes:
        raise IngestError("The page is larger than 5 MB.")
    return data


def locator_for(kind: str, locator: Optional[str]) -> str:
    return locator or ("page 1" if kind == "pdf" else "text")
