"""The languages the assistant speaks: which ones (content/languages.yml), which one a
message is in (detection), and which one each contact's conversation is in (memory).

No Rasa inside: the WhatsApp door, the NLU component and the clinic's services share it.
"""
