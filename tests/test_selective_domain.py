"""The domain goes to exactly the custom actions that read it (issue 15).

endpoints.yml sets ``enable_selective_domain``: Rasa then sends its domain (every response
in every language, ~250 KB of JSON) only to the actions marked ``send_domain: true`` in
domain/ (and, by Rasa's own rule, to ``validate_<form>`` actions). An action that reads the
domain without being marked would get ``{}`` and quietly go wrong (the FAQ check would say
"unknown" to every question, the form validators would see a form without slots).

- Statically: every action the action server registers is looked at, with the methods it
  inherits from this project's classes. It reads the domain when any of them reads its
  ``domain`` argument, or when it is one of rasa_sdk's validation actions (they read the
  domain's slots and forms). That set must equal the set Rasa sends the domain to.
- Through Rasa: a conversation touching every reader (a Russian session start, FAQ answers,
  the booking form) gets the same replies with the selective domain as with the whole one.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Dict, List

import pytest
import yaml
from rasa_sdk import Action
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.forms import ValidationAction

from tests.conftest import PROJECT_ROOT


def reads_domain(cls: type) -> List[str]:
    """Where an action class reads its domain argument (empty: it never does)."""
    found = []
    if issubclass(cls, ValidationAction):
        found.append(f"{cls.__name__} is a rasa_sdk {ValidationAction.__name__}")
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] not in {"actions", __name__.split(".")[0]}:
            continue  # rasa_sdk's own classes: covered by the ValidationAction rule above
        for method_name, method in vars(klass).items():
            function = getattr(method, "__func__", method)
            if not inspect.isfunction(function):
                continue
            tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
            definition = tree.body[0]
            assert isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef))
            if method_name == "run":
                # The check looks for the name `domain`: the argument must be called so.
                arguments = [a.arg for a in definition.args.args]
                assert arguments[1:4] == ["dispatcher", "tracker", "domain"], (cls, arguments)
            parameters = {a.arg for a in definition.args.args + definition.args.kwonlyargs}
            if "domain" not in parameters:
                continue
            if any(isinstance(node, ast.Name) and node.id == "domain" and isinstance(node.ctx, ast.Load)
                   for node in ast.walk(definition)):
                found.append(f"{klass.__name__}.{method_name}")
    return found


def registered_actions() -> Dict[str, type]:
    executor = ActionExecutor()
    executor.register_package("actions")
    classes = {name: run.__self__.__class__ for name, run in executor.actions.items()}
    # The SDK registers every Action subclass imported, this module's examples too.
    return {name: cls for name, cls in classes.items() if cls.__module__.split(".")[0] == "actions"}


def test_the_action_endpoint_sends_the_domain_selectively():
    endpoints = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8"))
    assert endpoints["action_endpoint"]["enable_selective_domain"] is True


def test_the_end_to_end_stack_serves_with_the_same_action_settings(tmp_path):
    # A model marks which actions get the domain; the test stack must not serve it the
    # whole domain where `make run` sends it selectively (or the other way round).
    from benchmarks.stack import Stack

    written = yaml.safe_load(Stack(tmp_path, tmp_path / "model.tar.gz").endpoints.read_text())
    assert written["action_endpoint"]["enable_selective_domain"] is True
    assert written["action_endpoint"]["url"].endswith("/webhook")


def test_the_domain_is_sent_to_exactly_the_actions_that_read_it():
    from rasa.shared.core.domain import Domain

    domain = Domain.load(str(PROJECT_ROOT / "domain"))
    actions = registered_actions()
    readers = {name: reads_domain(cls) for name, cls in actions.items()}
    readers = {name: where for name, where in readers.items() if where}
    sent = {name for name in actions if domain.does_custom_action_explicitly_need_domain(name)}
    # What this project's actions read today (if this changes, mark them in domain/).
    assert set(readers) == {"action_session_start", "action_check_faq_answer", "validate_booking_form",
                            "validate_reschedule_form", "validate_cancel_form"}, readers
    assert set(readers) - sent == set(), f"read the domain but are not sent it (send_domain: true): {readers}"
    assert sent - set(readers) == set(), "sent the domain but never read it: drop their send_domain"


class _ReadsTheDomain(Action):
    def name(self) -> str:
        return "test_reads_the_domain"

    async def run(self, dispatcher, tracker, domain):
        return [] if "utter_greet" in domain.get("responses", {}) else [{"event": "restart"}]


class _PassesItOn(_ReadsTheDomain):
    async def run(self, dispatcher, tracker, domain):
        return await super().run(dispatcher, tracker, domain)


class _NeverReadsIt(Action):
    def name(self) -> str:
        return "test_never_reads_the_domain"

    async def run(self, dispatcher, tracker, domain):
        return []


def test_the_check_sees_a_read():
    assert reads_domain(_ReadsTheDomain) == ["_ReadsTheDomain.run"]
    assert "_PassesItOn.run" in reads_domain(_PassesItOn)
    assert reads_domain(_NeverReadsIt) == []


@pytest.mark.model
@pytest.mark.servers
def test_a_conversation_gets_the_same_replies_with_the_selective_domain(tmp_path_factory, model):
    """Rasa's own endpoints: the whole domain to every action, then endpoints.yml's setting."""
    import asyncio

    from rasa.core.agent import Agent
    from rasa.core.channels.channel import UserMessage
    from rasa.utils.endpoints import EndpointConfig

    from benchmarks.stack import Stack

    stack = Stack(tmp_path_factory.mktemp("actions"), model)
    stack.start_actions()
    settings = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8"))["action_endpoint"]
    url = f"{stack.url('actions')}/webhook"
    conversation = [
        # A Russian patient's first message: the welcome is chosen from the domain's variations.
        ("ru", "Здравствуйте"),
        # FAQ answers: the check looks the topic's approved response up in the domain.
        ("ru", "когда вы открыты?"),
        ("en", "what are your opening hours"),
        ("en", "where can I park"),
        # The booking form: the validator reads the form's required slots from the domain.
        ("en", "I'd like to book an appointment"),
        ("en", '/inform{"service": "gp_consultation"}'),
        ("en", "anyone"),
        ("en", "never mind"),
    ]

    async def replies(selective: bool, sender: str):
        options = {key: value for key, value in settings.items() if key != "url"} if selective else {}
        agent = Agent.load(str(model), action_endpoint=EndpointConfig(url, **options))
        out = []
        for language, text in conversation:
            answer = await agent.handle_message(UserMessage(text, sender_id=sender, metadata={"language": language}))
            out.append([{k: v for k, v in r.items() if k != "recipient_id"} for r in answer or []])
        return out

    try:
        whole = asyncio.run(replies(False, "patient-whole"))
        selective = asyncio.run(replies(True, "patient-selective"))
    finally:
        stack.stop()
    assert all(whole), whole  # every message answered
    # With the whole domain: the welcome in Russian, the approved opening hours text.
    assert any("\u0430" <= ch <= "\u044f" for ch in whole[0][0]["text"]), whole[0]
    assert "Opening hours" in str(whole[2]) and "approved answer" not in str(whole[2]), whole[2]
    assert selective == whole
