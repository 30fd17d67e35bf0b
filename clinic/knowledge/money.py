"""Questions about money: what something costs, whether it is sold, how to pay.

The clinic's documents name a price, a fee or "free of charge" where they mean to; a question
about money is answered only from a passage that does. Otherwise the passage on the thing asked
about ("The MRI examination takes 30 minutes…") looks like the answer to a question the
documents do not answer ("how much does an MRI cost?", "do you sell hearing aids?"): on the
tuning set these were the unanswerable questions the decision most often took for answerable
(docs/measurements.md, session 14). ``money_unstated`` is that signal of the decision
(clinic/knowledge/decision.py). Compared after clinic.language.tokens.terms (English stems,
Russian lemmas, jieba words), as the search compares everything.
"""

from __future__ import annotations

import functools
from typing import FrozenSet, Iterable

from clinic.language.tokens import terms

MONEY_WORDS = {
    "en": """sell sells sold buy bought purchase cost costs price prices pricing pay paid payment fee fees
             charge charged bill invoice euro euros cash cheap expensive free refund money""",
    "ru": """продавать продать продажа купить покупать покупка стоить стоимость цена платить заплатить
             оплата оплачивать оплатить платный платно бесплатно бесплатный евро рубль деньги наличные""",
    "zh": """卖 买 出售 购买 钱 费用 价格 价钱 付款 支付 付费 收费 免费 欧元 花钱 要钱 贵 便宜 现金""",
}


@functools.lru_cache(maxsize=None)
def money_terms(language: str) -> FrozenSet[str]:
    """The language's money words as the search's terms (none for a language not listed)."""
    return frozenset(term for word in MONEY_WORDS.get(language, "").split() for term in terms(word))


def mentions_money(text: str, language: str) -> bool:
    """Whether ``text`` asks or says something about money."""
    words = money_terms(language)
    return bool(words) and not words.isdisjoint(terms(text))


def money_unstated(question: str, passage_terms: Iterable[str], language: str) -> bool:
    """The question is about money and the passage (its terms, as the index holds them: the
    search does not split a passage's text again for every question) says nothing of it."""
    return mentions_money(question, language) and money_terms(language).isdisjoint(passage_terms)
