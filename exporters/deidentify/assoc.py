"""What to change in an association PDU (PS3.8 9.3.2-9.3.3): the user
identity (a user name, a passcode, a Kerberos ticket, a SAML assertion or
a JSON web token) always; with --hosts, the Called and Calling AE titles.
Patches are same-length, relative to the PDU's first byte (its header).
"""

from __future__ import annotations

import struct

from dicomwire.exporters.deidentify.values import Mapper

ASSOCIATE_RQ, ASSOCIATE_AC = 1, 2
USER_INFO, USER_IDENTITY_RQ, USER_IDENTITY_AC = 0x50, 0x58, 0x59
_ITEM = struct.Struct("!BxH")


def plan_associate(body: bytes, hosts: bool, mapper: Mapper, tally) -> list:
    """Patches ``[(offset, bytes)]`` for an A-ASSOCIATE-RQ/-AC ``body``
    (header included); what does not parse is left as it is (the item walk
    stops) but never reaches the user identity unread."""
    patches: list = []
    if len(body) < 74 or body[0] not in (ASSOCIATE_RQ, ASSOCIATE_AC):
        return patches
    for at in (10, 26):                           # Called, Calling AE Title
        raw = body[at:at + 16]
        if not hosts:
            tally.keep("AE", raw)                 # kept: found again, it is no leak
            continue
        new = mapper.pseudonym(raw)
        if new != raw:
            patches.append((at, new))
            tally.replaced("AE title (A-ASSOCIATE)", "AE", raw)
    pos = 74
    while pos + 4 <= len(body):
        itype, length = _ITEM.unpack_from(body, pos)
        end = min(pos + 4 + length, len(body))
        if itype == USER_INFO:
            _user_info(body, pos + 4, end, mapper, tally, patches)
        pos = end
    return patches


def _user_info(body, pos, end, mapper, tally, patches):
    while pos + 4 <= end:
        stype, length = _ITEM.unpack_from(body, pos)
        sub_end = min(pos + 4 + length, end)
        if stype == USER_IDENTITY_RQ and pos + 8 <= sub_end:
            kind = body[pos + 4]
            plen = struct.unpack_from("!H", body, pos + 6)[0]
            p0 = pos + 8
            primary = body[p0:min(p0 + plen, sub_end)]
            if primary:
                # A user name keeps a consistent pseudonym; tokens are zeroed.
                new = mapper.pseudonym(primary) if kind in (1, 2) else bytes(len(primary))
                patches.append((p0, new))
                tally.replaced("user identity", "LO" if kind in (1, 2) else None, primary)
            s_at = p0 + plen
            if s_at + 2 <= sub_end:
                slen = struct.unpack_from("!H", body, s_at)[0]
                secondary = body[s_at + 2:min(s_at + 2 + slen, sub_end)]
                if secondary:
                    patches.append((s_at + 2, bytes(len(secondary))))
                    tally.replaced("user identity passcode", None, secondary)
        elif stype == USER_IDENTITY_AC and pos + 6 <= sub_end:
            rlen = struct.unpack_from("!H", body, pos + 4)[0]
            resp = body[pos + 6:min(pos + 6 + rlen, sub_end)]
            if resp:
                patches.append((pos + 6, bytes(len(resp))))
                tally.replaced("user identity response", None, resp)
        pos = sub_end
