"""Print the demo patient guide (content/knowledge/source/patient-guide.<lang>.html) to
content/knowledge/patient-guide.<lang>.pdf with Debian's Chromium, so the PDFs are made by
the project from text in git (DejaVu Sans for Cyrillic, WenQuanYi Micro Hei for Chinese).

    .venv/bin/python scripts/make_knowledge_pdfs.py          # all languages
The PDFs are committed: the evaluation and tests do not need a browser to read them.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = Path("/usr/bin/chromium")
SOURCE = ROOT / "content" / "knowledge" / "source"
OUT = ROOT / "content" / "knowledge"


def main() -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        for html in sorted(SOURCE.glob("patient-guide.*.html")):
            language = html.name.split(".")[1]
            page.goto(html.as_uri())
            target = OUT / f"patient-guide.{language}.pdf"
            page.pdf(path=str(target), format="A4", print_background=False)
            print(f"wrote {target.relative_to(ROOT)}")
        browser.close()


if __name__ == "__main__":
    main()
