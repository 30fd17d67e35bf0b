"""The clinic API process's own settings: the one place in this package that reads the
environment (the clinic's settings are content/clinic.yml's, read by clinic/settings.py)."""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Optional


@dataclasses.dataclass(frozen=True)
class ApiAddress:
    host: str = "127.0.0.1"
    port: int = 8090

    @classmethod
    def load(cls, environ: Optional[Mapping[str, str]] = None) -> "ApiAddress":
        environ = os.environ if environ is None else environ
        try:
            port = int(environ.get("CLINIC_API_PORT") or cls.port)
        except ValueError as error:
            raise ValueError("CLINIC_API_PORT must be a port number") from error
        return cls(host=environ.get("CLINIC_API_HOST") or cls.host, port=port)
