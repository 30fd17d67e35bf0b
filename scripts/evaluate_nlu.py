"""NLU evaluation for the data team, per language (en, ru, zh) and overall.

One model is trained on all three languages together, as in production; its predictions
are then split by the language of each example (data/nlu/<lang>/...). Two evaluations:

  cross-validation  5 stratified folds over the whole multilingual data (fixed seed):
                    every example is predicted once by a model that did not see it.
  held-out split    20 % of each language's examples (stratified by intent, fixed seed)
                    are set aside; one model is trained on the other 80 % and tested on
                    them: the figure to compare with a later data or pipeline change.

Both run by default: 6 NLU trainings, about 20 minutes on 2 cores (11 without the sentence
embeddings). Folds and split are
made per language (stratified by intent, seeded), so `--languages en` tests exactly the
English examples that the three-language run tests. Intents with fewer examples than folds
(the technical placeholders "zqx..." that buttons and external events trigger) are always
in the training data and never tested: no held-out example can teach them.

Intent accuracy and macro F1 are those of Rasa's `rasa test nlu` (its report code is used):
the intent after the whole pipeline (deterministic components included), with the
FallbackClassifier's `nlu_fallback` undone as Rasa does, so the intent it would have hidden
is counted. "FAQ acc" is the response selector's answer on `faq` examples (as Rasa reports
it); "FAQ e2e" also requires the intent `faq`, i.e. what the patient gets. Output (default
results/nlu/):

  summary.json               all figures (per language and overall), to compare pipelines
  intent_report.json, intent_confusion_matrix.png/.csv, intent_histogram.png, intent_errors.json,
  response_selection_report.json (+ its matrix, histogram and errors), predictions.csv:
                             cross-validation, all languages together
  <lang>/                    the same for one language (en, ru, zh)
  holdout/, holdout/<lang>/  the same for the held-out split

    make evaluate                                     # CV + held-out, config.yml
    make evaluate ARGS="--mode cv --folds 3"          # options through make
    python scripts/evaluate_nlu.py --mode holdout     # held-out split only (1 training)
    python scripts/evaluate_nlu.py --config /tmp/variant.yml --out /tmp/nlu-variant
    python scripts/evaluate_nlu.py --languages en     # English data only
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("en", "ru", "zh")
FAQ = "faq"


@dataclass
class Example:
    message: object  # rasa Message
    language: str
    path: str

    @property
    def text(self) -> str:
        return self.message.get("text")

    @property
    def intent(self) -> str:
        return self.message.get("intent")

    @property
    def full_intent(self) -> str:
        return self.message.get_full_intent()


@dataclass
class Prediction:
    example: Example
    split: str  # "fold 1".. or "holdout"
    intent: Optional[str]
    confidence: Optional[float]
    fallback: bool  # the FallbackClassifier would have asked to rephrase
    response: Optional[str] = None  # the response selector's faq/<key>
    response_confidence: Optional[float] = None


@dataclass
class Data:
    examples: List[Example]
    always_train: List[Example]  # intents too small to test
    extras: Dict[str, object] = field(default_factory=dict)  # lookups, synonyms, regexes


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mode", choices=("both", "cv", "holdout"), default="both",
                        help="cross-validation, held-out split, or both (default)")
    parser.add_argument("--folds", type=int, default=5, help="CV folds (default 5)")
    parser.add_argument("--holdout", type=float, default=0.2, metavar="FRACTION",
                        help="share of each language's examples held out (default 0.2)")
    parser.add_argument("--seed", type=int, default=42, help="seed of folds and split")
    parser.add_argument("--config", default="config.yml",
                        help="pipeline to evaluate (relative paths: from the repository root)")
    parser.add_argument("--nlu", default="data/nlu", help="NLU data: <dir>/<lang>/*.yml")
    parser.add_argument("--languages", default=",".join(LANGUAGES),
                        help="comma-separated subset of en,ru,zh (default all three)")
    parser.add_argument("--out", default="results/nlu", help="output directory")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = parser.parse_args()
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    if not 0 < args.holdout < 1:
        parser.error("--holdout must be between 0 and 1")
    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
    if not languages or set(languages) - set(LANGUAGES):
        parser.error(f"--languages: choose from {', '.join(LANGUAGES)}")

    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))  # project components (addons.*) named in config.yml
    # Fold models are thrown away: keep them out of the shared training cache (.rasa/).
    os.environ["RASA_MAX_CACHE_SIZE"] = "0"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["LOG_LEVEL"] = "WARNING"  # Rasa: no progress bars, no debug lines
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("rasa", "tensorflow", "absl", "jieba", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)

    out = Path(args.out)
    out = out if out.is_absolute() else ROOT / out
    out.mkdir(parents=True, exist_ok=True)
    config = str(Path(args.config).resolve())
    min_count = args.folds if args.mode != "holdout" else 2
    data = load(Path(args.nlu), languages, min_count)
    print(f"NLU data: {len(data.examples)} testable examples "
          + ", ".join(f"{lang} {sum(e.language == lang for e in data.examples)}" for lang in languages)
          + f"; trained, never tested ({len(data.always_train)} examples of intents with fewer "
          + f"than {min_count} in a language): "
          + f"{', '.join(sorted({e.full_intent for e in data.always_train})) or 'none'}")
    print(f"Pipeline: {display(Path(config))}")

    summary: Dict[str, object] = {
        "config": display(Path(config)), "seed": args.seed, "languages": languages,
        "examples": {lang: sum(e.language == lang for e in data.examples) for lang in languages},
    }
    if args.mode in ("both", "cv"):
        started = time.monotonic()
        predictions = cross_validate(data, config, args.folds, args.seed)
        elapsed = time.monotonic() - started
        figures = report(predictions, out, languages, not args.no_plots)
        summary["cv"] = {"folds": args.folds, "seconds": round(elapsed), **figures}
        print_figures(f"{args.folds}-fold cross-validation, one model on "
                      f"{'+'.join(languages)} ({elapsed:.0f} s)", figures, languages)
    if args.mode in ("both", "holdout"):
        started = time.monotonic()
        predictions = holdout(data, config, args.holdout, args.seed)
        elapsed = time.monotonic() - started
        figures = report(predictions, out / "holdout", languages, not args.no_plots)
        summary["holdout"] = {"fraction": args.holdout, "seconds": round(elapsed), **figures}
        print_figures(f"Held-out split: {args.holdout:.0%} of each language, trained on the rest "
                      f"({elapsed:.0f} s)", figures, languages)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    where = []
    if "cv" in summary:
        where.append(f"cross-validation {display(out)}/ and {display(out)}/<lang>/")
    if "holdout" in summary:
        where.append(f"held-out split {display(out)}/holdout/ and {display(out)}/holdout/<lang>/")
    print(f"\nReports, confusion matrices and predictions: {'; '.join(where)}; "
          f"figures in {display(out)}/summary.json")
    return 0


def display(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# --- data -----------------------------------------------------------------------------------

def load(nlu_dir: Path, languages: Sequence[str], min_count: int) -> Data:
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData

    nlu_dir = nlu_dir if nlu_dir.is_absolute() else ROOT / nlu_dir
    examples: List[Example] = []
    parts = []
    for lang in languages:
        files = sorted((nlu_dir / lang).rglob("*.yml")) + sorted((nlu_dir / lang).rglob("*.yaml"))
        if not files:
            raise SystemExit(f"no NLU files in {nlu_dir / lang}")
        for path in files:
            data = load_data(str(path))
            parts.append(data)
            examples += [Example(m, lang, display(path)) for m in data.intent_examples]
    merged = TrainingData().merge(*parts)
    counts = Counter(e.full_intent for e in examples)
    testable = [e for e in examples if counts[e.full_intent] >= min_count]
    always = [e for e in examples if counts[e.full_intent] < min_count]
    # A (language, intent) group smaller than the folds cannot be spread over them.
    groups = Counter(stratum(e) for e in testable)
    always += [e for e in testable if groups[stratum(e)] < min_count]
    testable = [e for e in testable if groups[stratum(e)] >= min_count]
    extras = {
        "entity_synonyms": merged.entity_synonyms,
        "regex_features": merged.regex_features,
        "lookup_tables": merged.lookup_tables,
        "responses": merged.responses,
    }
    return Data(testable, always, extras)


def stratum(example: Example) -> str:
    return f"{example.language}|{example.full_intent}"


def training_data(data: Data, examples: Sequence[Example]):
    from rasa.shared.nlu.training_data.training_data import TrainingData

    return TrainingData(training_examples=[e.message for e in examples], **data.extras)


# --- training and prediction ----------------------------------------------------------------

def by_language(data: Data) -> Dict[str, List[Example]]:
    groups: Dict[str, List[Example]] = {}
    for example in data.examples:
        groups.setdefault(example.language, []).append(example)
    return groups


def cross_validate(data: Data, config: str, folds: int, seed: int) -> List[Prediction]:
    """Each language's examples are cut into `folds` parts (stratified by intent, seeded):
    fold k tests part k of every language, so a language's folds do not depend on which
    other languages are evaluated with it (--languages en tests the same English folds)."""
    from sklearn.model_selection import StratifiedKFold

    tests: List[List[Example]] = [[] for _ in range(folds)]
    for examples in by_language(data).values():
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        labels = [e.full_intent for e in examples]
        for fold, (_, test_index) in enumerate(splitter.split(examples, labels)):
            tests[fold] += [examples[i] for i in test_index]
    predictions: List[Prediction] = []
    for fold, test in enumerate(tests, 1):
        held_out = {id(e) for e in test}
        train = [e for e in data.examples if id(e) not in held_out] + data.always_train
        print(f"  fold {fold}/{folds}: training on {len(train)}, testing {len(test)}...", flush=True)
        predictions += train_and_predict(data, config, train, test, f"fold {fold}")
    return predictions


def holdout(data: Data, config: str, fraction: float, seed: int) -> List[Prediction]:
    """`fraction` of each language's examples, stratified by intent, seeded (per language,
    as the folds)."""
    from sklearn.model_selection import train_test_split

    train: List[Example] = []
    test: List[Example] = []
    for examples in by_language(data).values():
        labels = [e.full_intent for e in examples]
        part_train, part_test = train_test_split(examples, test_size=fraction,
                                                 random_state=seed, stratify=labels)
        train += part_train
        test += part_test
    train += data.always_train
    print(f"  held-out split: training on {len(train)}, testing {len(test)}...", flush=True)
    return train_and_predict(data, config, train, test, "holdout")


def train_and_predict(data: Data, config: str, train: Sequence[Example],
                      test: Sequence[Example], split: str) -> List[Prediction]:
    import rasa.model_training
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter

    with tempfile.TemporaryDirectory(prefix="nlu-eval-") as tmp:
        nlu_file = Path(tmp) / "nlu.yml"
        RasaYAMLWriter().dump(nlu_file, training_data(data, train))
        started = time.monotonic()
        # Rasa repeats its data warnings for every fold (responses live in the domain, which
        # NLU training does not read; placeholder intents with one example): `make validate`
        # is where the data is checked.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = rasa.model_training.train_nlu(config, str(nlu_file), tmp,
                                                  fixed_model_name="nlu")
            if not model:
                raise SystemExit(f"{split}: training failed")
            trained = time.monotonic() - started
            predictions = predict(model, test, split)
        print(f"    trained in {trained:.0f} s, predicted in "
              f"{time.monotonic() - started - trained:.0f} s", flush=True)
        return predictions


def predict(model: str, test: Sequence[Example], split: str, batch: int = 128) -> List[Prediction]:
    """Parses the held-out examples as `rasa test nlu` does (rasa.nlu.test.get_eval_data),
    the model's NLU graph run on batches of messages instead of one at a time: every
    component handles each message on its own, so the results are the same (checked:
    identical intents, answers and confidences to processor.parse_message)."""
    from rasa.core.agent import Agent
    from rasa.core.channels import UserMessage
    from rasa.engine.constants import PLACEHOLDER_MESSAGE, PLACEHOLDER_TRACKER
    from rasa.nlu.classifiers import fallback_classifier
    from rasa.shared.core.trackers import DialogueStateTracker

    processor = Agent.load(model).processor
    target = processor.model_metadata.nlu_target
    tracker = DialogueStateTracker.from_events("evaluation", [])
    results = []
    for start in range(0, len(test), batch):
        chunk = test[start:start + batch]
        messages = processor.graph_runner.run(
            inputs={PLACEHOLDER_MESSAGE: [UserMessage(text=e.text) for e in chunk],
                    PLACEHOLDER_TRACKER: tracker},
            targets=[target],
        )[target]
        for example, message in zip(chunk, messages, strict=True):
            parsed = {"text": "", "intent": {"name": None, "confidence": 0.0}, "entities": []}
            parsed.update(message.as_dict(only_output_properties=False))
            results.append(prediction(example, parsed, split, fallback_classifier))
    return results


def prediction(example: Example, parsed: Dict, split: str, fallback_classifier) -> Prediction:
    fallback = fallback_classifier.is_fallback_classifier_prediction(parsed)
    if fallback:  # as Rasa's evaluation: count the intent the fallback would have hidden
        parsed = fallback_classifier.undo_fallback_prediction(parsed)
    intent = parsed.get("intent") or {}
    selector = parsed.get("response_selector") or {}
    chosen = (selector.get(FAQ) or selector.get("default") or {}).get("response", {})
    return Prediction(example, split, intent.get("name"), intent.get("confidence"), fallback,
                      chosen.get("intent_response_key"), chosen.get("confidence"))


# --- reports --------------------------------------------------------------------------------

def report(predictions: List[Prediction], out: Path, languages: Sequence[str],
           plots: bool) -> Dict[str, Dict[str, object]]:
    with warnings.catch_warnings():  # matplotlib's and pyparsing's deprecation notices
        warnings.simplefilter("ignore")
        figures = {"overall": evaluate(predictions, out, plots)}
        for lang in languages:
            subset = [p for p in predictions if p.example.language == lang]
            figures[lang] = evaluate(subset, out / lang, plots)
    return figures


def evaluate(predictions: List[Prediction], out: Path, plots: bool) -> Dict[str, object]:
    """Rasa's own intent and response-selection reports, plus a CSV matrix and predictions."""
    from rasa.nlu.test import (
        IntentEvaluationResult,
        ResponseSelectionEvaluationResult,
        evaluate_intents,
        evaluate_response_selections,
    )

    out.mkdir(parents=True, exist_ok=True)
    intents = [IntentEvaluationResult(p.example.intent, p.intent, p.example.text, p.confidence)
               for p in predictions]
    intent_eval = evaluate_intents(intents, str(out), successes=False, errors=True,
                                   disable_plotting=not plots, report_as_dict=True)
    faq = [p for p in predictions if p.example.intent == FAQ]
    responses = [ResponseSelectionEvaluationResult(p.example.full_intent, p.response,
                                                   p.example.text, p.response_confidence)
                 for p in faq]
    response_eval = evaluate_response_selections(
        responses, str(out), successes=False, errors=True, disable_plotting=not plots,
        report_as_dict=True) if len({p.example.full_intent for p in faq}) > 1 and any(
            p.response for p in faq) else None  # no ResponseSelector in the pipeline
    write_confusion_csv(predictions, out / "intent_confusion_matrix.csv")
    write_predictions(predictions, out / "predictions.csv")

    intent_report = intent_eval["report"]
    correct = sum(p.intent == p.example.intent for p in predictions)
    result: Dict[str, object] = {
        "examples": len(predictions),
        "intent_accuracy": round(correct / len(predictions), 4) if predictions else None,
        "intent_macro_f1": round(intent_report["macro avg"]["f1-score"], 4),
        "intent_weighted_f1": round(intent_report["weighted avg"]["f1-score"], 4),
        # Asked to rephrase (FallbackClassifier) although the intent was right / wrong.
        "fallback_when_right": sum(p.fallback and p.intent == p.example.intent for p in predictions),
        "fallback_when_wrong": sum(p.fallback and p.intent != p.example.intent for p in predictions),
        "weakest_intents": weakest(intent_report),
    }
    if response_eval:
        faq_report = response_eval["report"]
        result.update({
            "faq_examples": len(faq),
            "faq_accuracy": round(sum(p.response == p.example.full_intent for p in faq) / len(faq), 4),
            "faq_macro_f1": round(faq_report["macro avg"]["f1-score"], 4),
            # What a patient gets: the `faq` intent AND the right answer.
            "faq_end_to_end": round(sum(p.intent == FAQ and p.response == p.example.full_intent
                                        for p in faq) / len(faq), 4),
        })
    return result


def weakest(intent_report: Dict[str, object], count: int = 6) -> List[Dict[str, object]]:
    skip = {"accuracy", "macro avg", "weighted avg", "micro avg"}
    rows = [(name, row) for name, row in intent_report.items()
            if name not in skip and isinstance(row, dict) and row.get("support", 0) > 0]
    rows.sort(key=lambda item: (item[1].get("f1-score", 0), item[0]))
    return [{"intent": name, "f1": round(row.get("f1-score", 0), 3),
             "precision": round(row.get("precision", 0), 3),
             "recall": round(row.get("recall", 0), 3), "support": row.get("support"),
             "confused_with": row.get("confused_with") or {}}
            for name, row in rows[:count]]


def write_confusion_csv(predictions: List[Prediction], path: Path) -> None:
    """Rows: the example's intent; columns: the predicted intent; cells: counts."""
    labels = sorted({p.example.intent for p in predictions} | {str(p.intent) for p in predictions})
    counts = Counter((p.example.intent, str(p.intent)) for p in predictions)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["intent \\ predicted"] + labels)
        for label in labels:
            if any(p.example.intent == label for p in predictions):
                writer.writerow([label] + [counts[(label, other)] for other in labels])


def write_predictions(predictions: List[Prediction], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["language", "file", "split", "text", "intent", "predicted",
                         "confidence", "correct", "fallback", "faq_answer", "faq_predicted",
                         "faq_confidence"])
        for p in predictions:
            is_faq = p.example.intent == FAQ
            writer.writerow([
                p.example.language, p.example.path, p.split, p.example.text,
                p.example.full_intent, p.intent, f"{p.confidence:.3f}" if p.confidence is not None else "",
                int(p.intent == p.example.intent), int(p.fallback),
                p.example.full_intent if is_faq else "", p.response if is_faq else "",
                f"{p.response_confidence:.3f}" if is_faq and p.response_confidence is not None else "",
            ])


def print_figures(title: str, figures: Dict[str, Dict[str, object]], languages: Sequence[str]) -> None:
    print(f"\n{title}")
    print(f"  {'':8s} {'examples':>8s} {'intent acc':>10s} {'macro F1':>9s} "
          f"{'FAQ acc':>8s} {'FAQ F1':>7s} {'FAQ e2e':>8s}")

    def fmt(row: Dict[str, object], name: str, width: int) -> str:
        value = row.get(name)
        return f"{value:>{width}.3f}" if isinstance(value, float) else f"{'-':>{width}s}"

    for key in list(languages) + ["overall"]:
        f = figures[key]
        print(f"  {key:8s} {f['examples']:>8d} {fmt(f, 'intent_accuracy', 10)} "
              f"{fmt(f, 'intent_macro_f1', 9)} {fmt(f, 'faq_accuracy', 8)} "
              f"{fmt(f, 'faq_macro_f1', 7)} {fmt(f, 'faq_end_to_end', 8)}")
    for key in languages:
        print(f"  weakest intents ({key}):")
        for row in figures[key]["weakest_intents"][:4]:
            confused = ", ".join(f"{k} ({v})" for k, v in row["confused_with"].items())
            print(f"    {row['intent']:26s} F1 {row['f1']:.3f} (P {row['precision']:.2f} "
                  f"R {row['recall']:.2f}, n={row['support']})"
                  + (f"  confused with {confused}" if confused else ""))


if __name__ == "__main__":
    sys.exit(main())
