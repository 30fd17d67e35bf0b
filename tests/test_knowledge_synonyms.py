"""The clinic's synonym list and the search's word matching (issue 17): words patients and
documents use differently still meet; real SQLite, the real demo documents and tokenizers."""

from __future__ import annotations

import pytest

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.knowledge.demo import DIRECTORY
from clinic.knowledge.search import Searcher
from clinic.knowledge.service import KnowledgeBase
from clinic.knowledge.synonyms import SynonymError, Synonyms, default_synonyms, load_synonyms


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('synonyms') / 'clinic.db'}")
    create_schema(engine)
    factory = make_session_factory(engine)
    kb = KnowledgeBase(factory)
    with kb.sessions.begin() as session:
        for language in ("en", "ru", "zh"):
            name = f"visiting-policy.{language}.md"
            version = kb.upload(session, data=(DIRECTORY / name).read_bytes(), name=name, by="reviewer",
                                title=f"Visiting policy ({language})")
            kb.approve(session, version.id, "reviewer")
    yield factory
    engine.dispose()


@pytest.mark.parametrize("question, language, expected", [
    ("我可以带狗来吗？", "zh", "导盲犬等辅助犬"),  # jieba's 带狗, the text's 犬
    ("можно взять с собой собаку?", "ru", "Собак-помощников"),  # собака inside a compound
    ("Can I bring my pet?", "en", "Assistance dogs"),
])
def test_patients_words_meet_the_documents_words(sessions, question, language, expected):
    answer = Searcher(sessions).answer(question, language)
    assert answer.found and expected in answer.quote


@pytest.mark.parametrize("question, language", [("我可以带狗来吗？", "zh"), ("Can I bring my pet?", "en")])
def test_without_the_synonyms_those_questions_find_nothing(sessions, question, language):
    # The same search with an empty list: what the synonym list (and only it) adds. (The
    # Russian one is found by the compound rule: "собака" is a part of "собака-помощник".)
    assert not Searcher(sessions, synonyms=Synonyms({})).answer(question, language).found


def test_an_unrelated_question_stays_unanswered(sessions):
    assert not Searcher(sessions).answer("Is there a swimming pool?", "en").found
    assert not Searcher(sessions).answer("有游泳池吗？", "zh").found


def test_the_shipped_list_loads_and_maps_each_group_to_its_first_word():
    synonyms = default_synonyms()
    assert synonyms.canonical("zh", ["犬", "宠物", "诊所"]) == ["动物", "动物", "诊所"]
    assert synonyms.canonical("en", ["umbrella"]) == ["property"]
    assert synonyms.canonical("fr", ["chien"]) == ["chien"]  # a language without a list: unchanged


def test_a_malformed_or_missing_list_is_refused(tmp_path):
    bad = tmp_path / "synonyms.yml"
    bad.write_text("en:\n  - [lonely]\n", encoding="utf-8")
    with pytest.raises(SynonymError):
        load_synonyms(bad)
    with pytest.raises(SynonymError):
        load_synonyms(tmp_path / "missing.yml")
