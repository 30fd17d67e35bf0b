"""One router per concern; clinic_api.app includes each (one line per router)."""
