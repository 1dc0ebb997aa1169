"""``--hosts`` beyond AE titles: the IP and MAC addresses of every frame's
headers, mapped by the engine (:mod:`dicomwire.rewrite_hosts`), and what the
self-check found of them in the output.

The check reads the output's headers again (an
:class:`dicomwire.rewrite_hosts.AddressTap` in the decoding run) and looks
for every original address that was replaced. Header addresses only: a
4-byte IPv4 address also occurs by chance in pixel data, so searching the
whole file would fail on noise. An original that is also the pseudonym of
another address cannot be told from it in the output and is not counted.
"""

from __future__ import annotations

from dicomwire.rewrite_hosts import AddressMap, AddressTap, HeaderMapper, format_address

KINDS = ((4, "IPv4"), (16, "IPv6"), (6, "MAC"))


def header_mapper(key: bytes) -> tuple[HeaderMapper, AddressTap]:
    """The mapper of the rewrite and the tap of the self-check, under ``key``."""
    return HeaderMapper(AddressMap(key)), AddressTap()


def leaks(mapper: HeaderMapper, found: dict) -> list[tuple[str, int]]:
    """Original addresses found in the output's headers: (address, frame)."""
    changed = mapper.map.changed
    images = set(changed.values())
    return sorted(((format_address(a), n) for a, n in found.items()
                   if a in changed and a not in images), key=lambda x: x[1])


def write_summary(out, mapper: HeaderMapper, hits: list):
    changed = mapper.map.changed
    counts = ", ".join(f"{sum(1 for a in changed if len(a) == n)} {name}"
                       for n, name in KINDS)
    kept = len(mapper.map._cache) - len(changed)
    out.write(f"hosts: {counts} address(es) pseudonymised in the headers of "
              f"{mapper.rewritten} frame(s)"
              + (f"; {kept} kept (no host: unspecified, multicast, broadcast, ::1, "
                 f"00:00:00:00:00:00)" if kept else "") + "\n")
    if mapper.other:
        out.write(f"warning: {mapper.other} frame(s) of other protocols (ICMP errors, DNS, "
                  f"DHCP, tunnels) may name addresses in their payload, which is not "
                  f"rewritten\n")
    if hits:
        out.write(f"self-check FAILED: {len(hits)} original address(es) in the output's "
                  f"headers:\n")
        for text, frame in hits[:20]:
            out.write(f"  {text} in frame {frame}\n")
    else:
        out.write(f"self-check: none of {len(changed)} original addresses found in the "
                  f"output's frame headers\n")
