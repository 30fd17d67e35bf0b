"""``python -m gateway``: the WhatsApp gateway process (gateway/server.py)."""

from gateway.server import main

if __name__ == "__main__":
    main()
