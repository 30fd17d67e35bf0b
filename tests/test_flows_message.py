"""The typed Flow message (whatsapp/outbound.py ``FlowMessage``): Meta's shape, and shapes
Meta would reject refused when built."""

from __future__ import annotations

import pytest

from whatsapp.outbound import FlowMessage, MessageShapeError


def test_a_data_exchange_flow_message_has_metas_shape():
    payload = FlowMessage(body="Book in a short form", cta="Book in a form", flow_id="123",
                          flow_token="bf1.x.y").to_payload("15550123456")
    assert payload["type"] == "interactive"
    assert payload["interactive"] == {
        "type": "flow", "body": {"text": "Book in a short form"},
        "action": {"name": "flow", "parameters": {
            "flow_message_version": "3", "flow_token": "bf1.x.y", "flow_id": "123",
            "flow_cta": "Book in a form", "flow_action": "data_exchange"}}}


def test_navigate_carries_its_first_screen():
    payload = FlowMessage(body="b", cta="Open", flow_id="1", flow_token="t", flow_action="navigate",
                          screen="SERVICE", data={"a": 1}).to_payload("15550123456")
    assert payload["interactive"]["action"]["parameters"]["flow_action_payload"] == {
        "screen": "SERVICE", "data": {"a": 1}}


@pytest.mark.parametrize("changes, field", [
    ({"cta": "x" * 21}, "cta"),
    ({"flow_action": "navigate"}, "screen"),
    ({"screen": "SERVICE"}, "navigate"),
    ({"flow_token": " padded "}, "flow_token"),
    ({"body": ""}, "body"),
])
def test_shapes_meta_rejects_are_refused(changes, field):
    values = {"body": "b", "cta": "Open", "flow_id": "1", "flow_token": "t", **changes}
    with pytest.raises(MessageShapeError, match=field):
        FlowMessage(**values)
