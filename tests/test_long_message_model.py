"""Issue 12, item 11, through the trained model: a long message is `long_message` whatever
the classifier makes of it, and a red flag inside one is still an emergency. Needs the
model (tests/conftest.py trains it when data, domain or config changed)."""

from __future__ import annotations

import asyncio

import pytest

PARKING_COMPLAINT = (
    "I am writing to complain about the parking at your clinic. Last Tuesday I came for my "
    "appointment and there was not a single free space, so I drove around for twenty minutes "
    "and then had to leave the car on the street, where I got a fine. "
) * 25


@pytest.fixture(scope="module")
def agent(trained_model):
    from rasa.core.agent import Agent

    return Agent.load(str(trained_model))


def parse(agent, text: str) -> dict:
    return asyncio.run(agent.parse_message(text))


@pytest.mark.model
@pytest.mark.parametrize("text", [
    PARKING_COMPLAINT,
    "Хочу пожаловаться на парковку у вашей клиники: мест нет, пришлось оставить машину на улице. " * 10,
    "你们诊所的停车场太小了，每次来复诊都找不到车位，只好停在路边，还被罚了款。" * 8,
], ids=["en", "ru", "zh"])
def test_a_long_message_is_long_message(agent, text):
    result = parse(agent, text)
    assert result["intent"]["name"] == "long_message"
    assert {e["entity"] for e in result["entities"]} <= {"language"}


@pytest.mark.model
def test_a_red_flag_in_a_long_message_is_still_an_emergency(agent):
    result = parse(agent, PARKING_COMPLAINT + " And right now my husband has crushing chest pain.")
    assert result["intent"]["name"] == "emergency"


@pytest.mark.model
@pytest.mark.parametrize("text", [
    "I want to talk to a real person about my bill",
    "Хочу поговорить с живым человеком насчёт счёта",
    "我想找人工客服问一下账单",
])
def test_a_short_request_for_a_person_is_still_classified(agent, text):
    assert parse(agent, text)["intent"]["name"] == "request_human"
