"""Booking in a WhatsApp Flow (an in-chat form): its texts, flow tokens and screens.

The Flow JSON (flow.json) is registered with Meta once; its screens show what the data
endpoint (gateway/flow_endpoint.py) answers from the live calendar, in the patient's
language. Completion books through the chat form's own action (actions/appointments/).
"""
