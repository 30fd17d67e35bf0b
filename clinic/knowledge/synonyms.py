"""Words patients and documents use for the same thing, per language, edited by the clinic
in content/knowledge/synonyms.yml: "dog" in a question and "assistance dogs" in the visiting
policy, "狗" and "犬", "пёс" and "собака". The search maps every word of a group to the
group's first word, in questions and passages alike, so they meet in the BM25 index without
changing what is quoted. Read once per process: after editing the file, restart the action
server (the indexes are rebuilt from the stored passages; nothing is uploaded again).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, Iterable, List

from clinic.language.tokens import terms
from clinic.settings import PROJECT_ROOT
from clinic.yaml_files import load_yaml_file

DEFAULT_FILE = PROJECT_ROOT / "content" / "knowledge" / "synonyms.yml"


class SynonymError(ValueError):
    """The synonym file is missing or malformed."""


class Synonyms:
    def __init__(self, groups: Dict[str, List[List[str]]]) -> None:
        self._canonical: Dict[str, Dict[str, str]] = {}
        for language, language_groups in groups.items():
            mapping: Dict[str, str] = {}
            for group in language_groups:
                # Compared after the same normalisation as the search (stems, lemmas, jieba
                # words); a group member jieba cuts into several words is mapped word by word.
                normal = [term for word in group for term in (terms(str(word)) or [str(word)])]
                for term in normal:
                    mapping.setdefault(term, normal[0])
            self._canonical[language] = mapping

    def canonical(self, language: str, words: Iterable[str]) -> List[str]:
        mapping = self._canonical.get(language) or {}
        return [mapping.get(word, word) for word in words]


def load_synonyms(path: Path = DEFAULT_FILE) -> Synonyms:
    data = load_yaml_file(path, SynonymError, "Synonym list")
    if not isinstance(data, dict):
        raise SynonymError(f"{path}: expected languages mapping to lists of word groups")
    groups: Dict[str, List[List[str]]] = {}
    for language, language_groups in data.items():
        if not isinstance(language_groups, list) or not all(
                isinstance(g, list) and len(g) >= 2 for g in language_groups):
            raise SynonymError(f"{path}: {language}: each group is a list of at least two words")
        groups[str(language)] = [[str(word) for word in group] for group in language_groups]
    return Synonyms(groups)


@functools.lru_cache(maxsize=1)
def default_synonyms() -> Synonyms:
    return load_synonyms()
