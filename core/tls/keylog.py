"""NSS key log files: the secrets SSLKEYLOGFILE (browsers, curl), Python's
``ssl.SSLContext.keylog_filename`` and OpenSSL's keylog callback write, one
per line: ``LABEL <client_random hex> <secret hex>``.

Labels read: ``CLIENT_RANDOM`` (the TLS 1.2 master secret) and the TLS 1.3
traffic secrets (``CLIENT_HANDSHAKE_TRAFFIC_SECRET``,
``SERVER_HANDSHAKE_TRAFFIC_SECRET``, ``CLIENT_TRAFFIC_SECRET_0``,
``SERVER_TRAFFIC_SECRET_0``).  Other lines (comments, ``EXPORTER_SECRET``,
early secrets) are skipped; damaged lines are counted, never fatal.
"""

from __future__ import annotations

import os

LABELS = {"CLIENT_RANDOM", "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
          "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0",
          "SERVER_TRAFFIC_SECRET_0"}
MAX_FILE = 256 << 20          # a key log beyond this is not read whole


class KeyLogError(ValueError):
    """The key log cannot be read at all (missing, unreadable, too large)."""


class KeyLog:
    """Secrets by client random: ``secrets(random) -> {label: bytes}``."""

    def __init__(self, entries: dict[bytes, dict[str, bytes]] | None = None,
                 path: str | None = None, bad_lines: int = 0):
        self.entries = entries or {}
        self.path = path
        self.bad_lines = bad_lines

    def secrets(self, client_random: bytes) -> dict[str, bytes]:
        return self.entries.get(client_random, {})

    def __len__(self):
        return len(self.entries)

    @classmethod
    def parse(cls, text: str, path: str | None = None) -> "KeyLog":
        entries: dict[bytes, dict[str, bytes]] = {}
        bad = 0
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 3:
                bad += 1
                continue
            if parts[0] not in LABELS:
                continue            # EXPORTER_SECRET, early secrets: not needed
            try:
                rnd, secret = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            except ValueError:
                bad += 1
                continue
            if len(rnd) != 32 or not 32 <= len(secret) <= 64:
                bad += 1
                continue
            entries.setdefault(rnd, {})[parts[0]] = secret
        return cls(entries, path, bad)

    @classmethod
    def load(cls, path: str) -> "KeyLog":
        try:
            size = os.path.getsize(path)
            if size > MAX_FILE:
                raise KeyLogError(f"{path}: {size} bytes, more than a key log holds "
                                  f"(limit {MAX_FILE})")
            with open(path, encoding="ascii", errors="replace") as f:
                return cls.parse(f.read(), path)
        except OSError as e:
            raise KeyLogError(f"cannot read the TLS key log {path}: {e.strerror or e}") from None
