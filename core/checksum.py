"""The Internet checksum of the rewriters (RFC 1071), updated in place
(RFC 1624) when the words it covers change: the one place of its
arithmetic for :mod:`dicomwire.rewrite`, :mod:`dicomwire.rewrite_ip`,
:mod:`dicomwire.reshape` and :mod:`dicomwire.rewrite_hosts`."""

from __future__ import annotations


def sum16(b) -> int:
    """The one's complement sum of ``b`` as 16-bit words (odd length: a zero
    pad byte), modulo 0xFFFF: 2**16 is 1 modulo 0xFFFF (RFC 1071)."""
    if len(b) & 1:
        b = bytes(b) + b"\0"
    return int.from_bytes(b, "big") % 0xFFFF


def moved(check: int, delta: int) -> int:
    """The checksum field ``check`` once the sum of the words it covers grew
    by ``delta`` (their new sum minus their old, any integer): RFC 1624
    eqn. 3, HC' = ~(~HC + ~m + m'), summed with end-around carry, so the
    sum is never +0 and the result never 0xFFFF: a checksum that comes to
    zero is 0x0000, as a sender computes it (tshark flags 0xFFFF in TCP and
    IPv4 as wrong). Words whose sum did not change leave the field as it
    was, right or wrong; a wrong one (offloaded) stays wrong."""
    delta %= 0xFFFF
    if not delta:
        return check
    return ~(((~check & 0xFFFF) + delta) % 0xFFFF or 0xFFFF) & 0xFFFF
