"""Quick 5-fold CV that rebuilds the production features in scikit-learn (counts on the
multilingual tokenizer's lemmas, character n-grams on the romanised words + sentence embeddings scaled by a weight, logistic
regression blended with the nearest training examples as addons/neighbour_classifier.py,
its settings read from config.yml), per language, with the confusions: a few minutes, for
comparing feature choices and for a data team fixing examples (docs/measurements.md).

    PYTHONPATH=. python scripts/nlu_quick_cv.py [ru|zh|en] [--weight 8] [--regression-only]
                                                [--fixed-folds] [--save FILE]

`--fixed-folds` puts each example in the fold its text hashes to, so adding or removing
examples leaves every other example in its fold: two data versions can then be compared
example by example (`--save` writes text, language, intent and prediction as TSV).
Without it the folds are stratified by intent over the three languages (seed 42), and any
data change reshuffles them.

`make evaluate` is the full evaluation through Rasa.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import sys

import numpy as np
import yaml
from rasa.shared.nlu.training_data.loading import load_data
from rasa.shared.nlu.training_data.message import Message
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from addons.multilingual_tokenizer import MultilingualTokenizer
from addons.neighbour_classifier import blended_shift, votes_from_similarity
from addons.romanised_counts import ROMAN
from addons.sentence_embeddings import message_vectors

LANGUAGES = ("en", "ru", "zh")
CLASSIFIER = "addons.neighbour_classifier.NeighbourBlendedLogisticRegression"


def classifier_settings(regression_only: bool) -> dict:
    """The production classifier's C and blend, from config.yml."""
    pipeline = yaml.safe_load(open("config.yml", encoding="utf-8"))["pipeline"]
    config = next(c for c in pipeline if c["name"] == CLASSIFIER)
    settings = {"C": float(config.get("C", 1.0)), "neighbours": int(config.get("neighbours", 5)),
                "meaning": float(config.get("neighbour_weight", 0.0)),
                "wording": float(config.get("count_neighbour_weight", 0.0))}
    if regression_only:
        settings.update(meaning=0.0, wording=0.0)
    return settings


def unit_rows(matrix):
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).reshape(-1)
    return csr_matrix(matrix.multiply(1.0 / np.maximum(norms, 1e-12)[:, None]))


def blend(probabilities, classes, similarity, train_labels, k, weight):
    votes = votes_from_similarity(similarity, train_labels, classes, k)
    return probabilities + blended_shift(votes, probabilities, weight)


def fixed_folds(texts: list, langs, n_folds: int = 5):
    """Train/test index pairs where an example's fold depends on its language and text only."""
    fold = np.array([int(hashlib.sha256(f"{lang}\t{text}".encode()).hexdigest()[:8], 16) % n_folds
                     for text, lang in zip(texts, langs, strict=True)])
    for k in range(n_folds):
        yield np.flatnonzero(fold != k), np.flatnonzero(fold == k)


def main(argv: list) -> None:
    logging.disable(logging.WARNING)
    weight = float(argv[argv.index("--weight") + 1]) if "--weight" in argv else 8.0
    settings = classifier_settings("--regression-only" in argv)
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
    messages = [Message(data={"text": x}) for x in texts]
    tokens = [tokenizer.tokenize(message, "text") for message in messages]
    lemmas = [" ".join(t.lemma for t in row) for row in tokens]
    romans = [" ".join(t.get(ROMAN) for t in row) for row in tokens]
    dense = message_vectors(messages) * weight  # as addons/sentence_embeddings.py
    predicted = np.empty(len(texts), dtype=object)
    if "--fixed-folds" in argv:
        folds = fixed_folds(texts, langs)
    else:
        folds = StratifiedKFold(5, shuffle=True, random_state=42).split(texts, labels)
    for train, test in folds:
        words = CountVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"\S+")
        chars = CountVectorizer(analyzer="char_wb", ngram_range=(2, 5))
        words.fit([lemmas[i] for i in train])
        chars.fit([romans[i] for i in train])

        def features(rows, words=words, chars=chars):
            return hstack([words.transform([lemmas[i] for i in rows]),
                           chars.transform([romans[i] for i in rows]), csr_matrix(dense[rows])]).tocsr()

        model = LogisticRegression(max_iter=1000, class_weight="balanced", C=settings["C"])
        train_features, test_features = features(train), features(test)
        model.fit(train_features, labels[train])
        logistic = model.predict_proba(test_features)
        probabilities = logistic.copy()
        k, n_dense = settings["neighbours"], dense.shape[1]
        if settings["meaning"] > 0:
            meaning = dense[test] @ dense[train].T / (weight * weight)
            probabilities += blend(logistic, model.classes_, meaning, labels[train], k,
                                   settings["meaning"]) - logistic
        if settings["wording"] > 0:
            counts_train = unit_rows(train_features[:, :-n_dense])
            counts_test = unit_rows(test_features[:, :-n_dense])
            wording = (counts_test @ counts_train.T).toarray()
            probabilities += blend(logistic, model.classes_, wording, labels[train], k,
                                   settings["wording"]) - logistic
        predicted[test] = model.classes_[probabilities.argmax(axis=1)]
    print(settings, {lang: round(float((predicted[langs == lang] == labels[langs == lang]).mean()), 3)
           for lang in LANGUAGES}, "all", round(float((predicted == labels).mean()), 3))
    if "--save" in argv:
        with open(argv[argv.index("--save") + 1], "w", encoding="utf-8") as out:
            for text, lang, label, guess in zip(texts, langs, labels, predicted, strict=True):
                out.write(f"{lang}\t{label}\t{guess}\t{text}\n")
    if show:
        wrong = [i for i in range(len(texts)) if langs[i] == show and predicted[i] != labels[i]]
        print("top confusions (true -> predicted):",
              collections.Counter((labels[i], predicted[i]) for i in wrong).most_common(25))
        for i in wrong:
            print(f"  {labels[i]:22} -> {predicted[i]:22} | {texts[i]}")


if __name__ == "__main__":
    main(sys.argv[1:])
