"""Unicode ranges of the scripts that code outside language detection needs to recognise."""

from __future__ import annotations

import re

# Chinese characters: CJK Unified Ideographs, Extension A and the compatibility block.
HAN_RANGES = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
HAN = re.compile(f"[{HAN_RANGES}]")
