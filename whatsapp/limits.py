"""Meta's documented size and count limits for service messages (reference §5.10).

The connector enforces them before sending, and the simulator rejects messages that break
them exactly as Meta would, so a shape error can never reach a patient as silence.
"""

TEXT_BODY_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
HEADER_TEXT_MAX = 60
FOOTER_MAX = 60

REPLY_BUTTONS_MAX = 3
REPLY_BUTTON_TITLE_MAX = 20
REPLY_BUTTON_ID_MAX = 256

LIST_BUTTON_MAX = 20
LIST_SECTIONS_MAX = 10
LIST_ROWS_MAX = 10  # across all sections combined
LIST_SECTION_TITLE_MAX = 24
LIST_ROW_TITLE_MAX = 24
LIST_ROW_DESCRIPTION_MAX = 72
LIST_ROW_ID_MAX = 200

CTA_DISPLAY_TEXT_MAX = 20
MEDIA_CAPTION_MAX = 1024
LOCATION_REQUEST_BODY_MAX = 1024
TEMPLATE_QUICK_REPLY_PAYLOAD_MAX = 256  # (not documented by Meta; kept at the button-id size)
BIZ_OPAQUE_CALLBACK_DATA_MAX = 512

WEBHOOK_BODY_MAX_BYTES = 3 * 1024 * 1024
WEBHOOK_UPDATES_MAX = 1000

CUSTOMER_SERVICE_WINDOW_SECONDS = 24 * 60 * 60
DEFAULT_THROUGHPUT_PER_SECOND = 80
# Pair rate limit: about one message every 6 seconds to the same user, bursts borrow quota.
PAIR_RATE_WINDOW_SECONDS = 6
