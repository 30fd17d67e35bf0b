"""The inbox process's own settings (inbox/settings.py) and the clinic API's address."""

from __future__ import annotations

import pytest

from clinic_api.settings import ApiAddress
from inbox.settings import InboxProcessSettings, InboxSettingsError, new_staff_password


def test_defaults_and_the_reply_gateway_follows_the_whatsapp_channel():
    assert InboxProcessSettings.load({}) == InboxProcessSettings()
    whatsapp = {"WHATSAPP_ACCESS_TOKEN": "t", "WHATSAPP_PHONE_NUMBER_ID": "1"}
    assert InboxProcessSettings.load(whatsapp).reply_gateway == "whatsapp"
    assert InboxProcessSettings.load({**whatsapp, "INBOX_REPLY_GATEWAY": "tracker"}).reply_gateway == "tracker"


def test_every_setting_is_read():
    settings = InboxProcessSettings.load({"INBOX_HOST": "0.0.0.0", "INBOX_PORT": "9000", "RASA_URL": "http://rasa:5005",
                                          "RASA_AUTH_TOKEN": "s3cret", "INBOX_COOKIE_SECURE": "1"})
    assert (settings.host, settings.port, settings.rasa_url, settings.cookie_secure) == (
        "0.0.0.0", 9000, "http://rasa:5005", True)
    assert settings.rasa_token == "s3cret" and "s3cret" not in repr(settings)
    assert new_staff_password({"INBOX_NEW_PASSWORD": "long enough pw"}) == "long enough pw"
    assert new_staff_password({}) is None


@pytest.mark.parametrize("environ, named", [({"INBOX_PORT": "eighty"}, "INBOX_PORT"),
                                            ({"INBOX_REPLY_GATEWAY": "sms"}, "INBOX_REPLY_GATEWAY")])
def test_a_bad_setting_is_named(environ, named):
    with pytest.raises(InboxSettingsError, match=named):
        InboxProcessSettings.load(environ)


def test_the_clinic_apis_address():
    assert ApiAddress.load({}) == ApiAddress("127.0.0.1", 8090)
    assert ApiAddress.load({"CLINIC_API_HOST": "0.0.0.0", "CLINIC_API_PORT": "9090"}) == ApiAddress("0.0.0.0", 9090)
    with pytest.raises(ValueError, match="CLINIC_API_PORT"):
        ApiAddress.load({"CLINIC_API_PORT": "x"})
