"""Users with a WhatsApp username, whose phone number the business does not get (Meta's
business-scoped user ids, 2026).

A simulated user keeps a wa_id inside the simulator (its key for the chat page and the
control API), but when ``phone_hidden`` is set WhatsApp withholds it, as Meta does for a
username user: the webhook's ``contacts[]`` carries ``user_id`` (the BSUID) and
``profile.username`` and no ``wa_id``, the message carries ``from_user_id`` and no
``from``, statuses carry ``recipient_user_id`` and no ``recipient_id``. The business
answers with ``"recipient": "<BSUID>"`` instead of ``"to"``.

``change_user_id`` emits Meta's ``user_changed_user_id`` system update (a ``messages``
webhook without a contacts array; the old BSUID is ``from_user_id``, the new one
``system.user_id``) and the user answers to the new id only from then on.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any, Dict, Optional

from .graph_errors import invalid
from .state import User, new_wamid, now
from .user_messages import SpecError

if TYPE_CHECKING:
    from .core import Simulator

# Country code, ".", up to 128 characters; "ENT." marks a parent BSUID (Meta's BSUID page).
BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")
USERNAME = re.compile(r"[a-z0-9._]{3,35}")
OPTION_KEYS = ("username", "phone_hidden")


def new_bsuid(country: str = "US") -> str:
    return f"{country}.{10**19 + secrets.randbelow(9 * 10**19)}"


def check_recipient(recipient: Any) -> None:
    """A send's ``recipient``: a BSUID, as Meta checks it (error 100 otherwise)."""
    if not isinstance(recipient, str) or not BSUID.fullmatch(recipient):
        raise invalid("recipient", "must be a business-scoped user id such as US.13491208655302741918")


def configure(user: User, data: Dict[str, Any]) -> User:
    """Apply the control API's ``username`` / ``phone_hidden`` options to ``user``. A user
    whose phone is hidden needs a BSUID: one is made when they have none."""
    username = data.get("username")
    if username is not None:
        if username != "" and (not isinstance(username, str) or not USERNAME.fullmatch(username)):
            raise SpecError("username: 3-35 characters of a-z, 0-9, '.' and '_'")
        user.username = username or None
    hidden = data.get("phone_hidden")
    if hidden is not None:
        if not isinstance(hidden, bool):
            raise SpecError("phone_hidden must be true or false")
        user.phone_hidden = hidden
    if (user.phone_hidden or user.username) and not user.user_id:
        user.user_id = new_bsuid()
    return user


def contact_of(user: User) -> Dict[str, Any]:
    """``value.contacts[i]`` for ``user``, as Meta shapes it (pywa's message.json fixture)."""
    profile: Dict[str, Any] = {"name": user.name}
    if user.username:
        profile["username"] = user.username
    item: Dict[str, Any] = {"profile": profile}
    if not user.phone_hidden:
        item["wa_id"] = user.wa_id
    if user.user_id:
        item["user_id"] = user.user_id
    return item


def withhold_phone(user: User, message: Dict[str, Any]) -> Dict[str, Any]:
    """A user message as the business receives it: no ``from`` when the phone is hidden."""
    if user.phone_hidden and user.user_id:
        message.pop("from", None)
    return message


def status_recipient(user: Optional[User], obj: Dict[str, Any]) -> Dict[str, Any]:
    """A status object's recipient fields for ``user``."""
    if user is not None and user.user_id:
        obj["recipient_user_id"] = user.user_id
        if user.phone_hidden:
            obj.pop("recipient_id", None)
    return obj


async def change_user_id(sim: "Simulator", wa_id: str, new_user_id: Optional[str] = None,
                         signature: str = "valid") -> Dict[str, Any]:
    """The user's BSUID changes: Meta's ``user_changed_user_id`` system webhook."""
    from .webhooks import dumps, envelope, messages_value

    user = sim.state.users.get(wa_id)
    if user is None or not user.user_id:
        raise SpecError(f"user {wa_id} has no business-scoped user id to change")
    new_user_id = new_user_id or new_bsuid(user.user_id.split(".")[0])
    if not BSUID.fullmatch(new_user_id) or new_user_id == user.user_id:
        raise SpecError("the new user id must be a different business-scoped user id")
    old, user.user_id = user.user_id, new_user_id
    # "The notification reports only the BSUID change; no phone number is included."
    message: Dict[str, Any] = {"from_user_id": old,
                               "id": new_wamid(user.wa_id, outbound=False), "timestamp": str(int(now())),
                               "type": "system",
                               "system": {"body": f"User {user.name} changed from {old} to {new_user_id}",
                                          "user_id": new_user_id, "type": "user_changed_user_id"}}
    body = dumps(envelope(sim.config, [messages_value(sim.config, [], [message])]))
    delivery = sim.dispatcher.send("message", body, [message["id"]], signature=signature)
    sim.publish(user.wa_id, "user_changed", {"wa_id": user.wa_id, "user_id": new_user_id})
    return {"old_user_id": old, "user_id": new_user_id, "message": message, "webhook": delivery.describe()}
