"""Words that carry no subject (question words, pronouns, and the generic verbs of a
request: "bring", "взять", "带") in a question ("can I", "как", "我想"): left out of the query
so that a question's confidence rests on what it is about. Compared after
clinic.language.tokens.terms (English stems, Russian lemmas, jieba words)."""

from __future__ import annotations

import functools
from typing import FrozenSet

from clinic.language.tokens import terms

_EN = """a an the and or but if of to in on at for with by from about as into than then so is are was
were be been being am do doe did done have ha had having can could may might must shall should will would
i me my mine we us our you your yours he him his she her it its they them their this that these those
there here what which who whom whose when where why how whether not no yes please tell know want need
any some all each every much many more most other such own same too very just also only
get got let make one anything something someone anyone thing way there's what's i'm it's don't can't
ok okay hi hello thank thanks clinic riverside
bring take come go allow allowed use give find see possible wait there does able anyone
im ive i've till still up before after during""".split()
_RU = """а и или но если то что чтобы как какой какая какие каков где куда когда зачем почему кто чей
ли же бы не нет да в во на с со к ко по о об от до из у за для при над под про без через между
я мы ты вы он она оно они меня мне мной нас нам нами тебя тебе вас вам вами его ему ее её ей их им ими
мой моя мое моё мои наш ваш ваши свой это этот эта эти тот та те такой быть есть был была были будет
мочь можно нужно нужный необходимо надо хотеть сказать подсказать знать пожалуйста скажите здравствуйте спасибо
ли ну вот уже еще ещё тоже также только очень весь всё все сколько какой-то что-то кто-то
клиника ваш вашей себя собой
прийти приходить взять брать принести приносить разрешить разрешено разрешается нельзя можете
ли-то быть делать сделать
перед после прямо""".split()
_ZH = """的 了 吗 呢 吧 啊 呀 是 在 有 和 与 或 我 我们 你 你们 您 他 她 它 他们 这 那 这个 那个 哪 哪个 哪些
什么 怎么 怎么样 怎样 如何 为什么 吗 可以 能 能够 会 要 想 需要 请 请问 一下 多少 几 吗 么 就 都 也 还 又
把 被 给 对 从 到 向 吧 呢 个 些 里 上 下 中 时候 诊所 你们的 贵 请问一下 知道 告诉 一个 么 没有 不 是否
带 来 去 允许 吗？ 能不能 可不可以 可否 做
有没有 是不是 我要 我想 哪里 哪儿 在哪 在哪里 时 完 后 刚 前""".split()


def _normalised(words) -> FrozenSet[str]:
    out = set()
    for word in words:
        out.update(terms(word))
        out.add(word)
    return frozenset(out)


_LISTS = {"en": _EN, "ru": _RU, "zh": _ZH}


@functools.lru_cache(maxsize=None)
def stopwords(language: str) -> FrozenSet[str]:
    # Built on first use: normalising needs the Russian and Chinese dictionaries loaded.
    return _normalised(_LISTS.get(language, ()))
