"""Quick 5-fold CV that rebuilds the production features in scikit-learn (counts on the
multilingual tokenizer's lemmas, character n-grams on the romanised words + sentence embeddings scaled by a weight, logistic
regression as Rasa's), per language, with the confusions: about a minute, for comparing
feature choices and for a data team fixing examples (docs/measurements.md).

    PYTHONPATH=. python scripts/nlu_quick_cv.py [ru|zh|en] [--weight 8]

`make evaluate` is the full evaluation through Rasa.
"""

from __future__ import annotations

import collections
import logging
import sys

import numpy as np
from rasa.shared.nlu.training_data.loading import load_data
from rasa.shared.nlu.training_data.message import Message
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from addons.multilingual_tokenizer import MultilingualTokenizer
from addons.romanised_counts import ROMAN
from addons.sentence_embeddings import embed

LANGUAGES = ("en", "ru", "zh")


def main(argv: list) -> None:
    logging.disable(logging.WARNING)
    weight = float(argv[argv.index("--weight") + 1]) if "--weight" in argv else 8.0
    show = next((a for a in argv if a in LANGUAGES), None)
    tokenizer = MultilingualTokenizer(MultilingualTokenizer.get_default_config())
    texts, labels, langs = [], [], []
    for lang in LANGUAGES:
        for message in load_data(f"data/nlu/{lang}").intent_examples:
            intent, text = message.get("intent"), message.get("text")
            if intent.startswith("EXTERNAL") or text.startswith("zqx"):
                continue  # machine-only tokens
            texts.append(text)
            labels.append(intent)
            langs.append(lang)
    labels, langs = np.array(labels), np.array(langs)
    tokens = [tokenizer.tokenize(Message(data={"text": x}), "text") for x in texts]
    lemmas = [" ".join(t.lemma for t in row) for row in tokens]
    romans = [" ".join(t.get(ROMAN) for t in row) for row in tokens]
    dense = embed(texts) * weight
    predicted = np.empty(len(texts), dtype=object)
    for train, test in StratifiedKFold(5, shuffle=True, random_state=42).split(texts, labels):
        words = CountVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"\S+")
        chars = CountVectorizer(analyzer="char_wb", ngram_range=(2, 5))
        words.fit([lemmas[i] for i in train])
        chars.fit([romans[i] for i in train])

        def features(rows, words=words, chars=chars):
            return hstack([words.transform([lemmas[i] for i in rows]),
                           chars.transform([romans[i] for i in rows]), csr_matrix(dense[rows])]).tocsr()

        model = LogisticRegression(max_iter=1000, class_weight="balanced")
        predicted[test] = model.fit(features(train), labels[train]).predict(features(test))
    print({lang: round(float((predicted[langs == lang] == labels[langs == lang]).mean()), 3)
           for lang in LANGUAGES}, "all", round(float((predicted == labels).mean()), 3))
    if show:
        wrong = [i for i in range(len(texts)) if langs[i] == show and predicted[i] != labels[i]]
        print("top confusions (true -> predicted):",
              collections.Counter((labels[i], predicted[i]) for i in wrong).most_common(25))
        for i in wrong:
            print(f"  {labels[i]:22} -> {predicted[i]:22} | {texts[i]}")


if __name__ == "__main__":
    main(sys.argv[1:])
