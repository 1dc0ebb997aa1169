"""Address formatting for display (never on the hot path)."""

import socket
from functools import lru_cache


def format_addr(packed: bytes) -> str:
    if len(packed) == 4:
        return socket.inet_ntop(socket.AF_INET, packed)
    if len(packed) == 16:
        return socket.inet_ntop(socket.AF_INET6, packed)
    return packed.hex()


@lru_cache(maxsize=4096)          # per summary line: the same few endpoints again and again
def format_endpoint(packed: bytes, port: int) -> str:
    a = format_addr(packed)
    return f"[{a}]:{port}" if ":" in a else f"{a}:{port}"
