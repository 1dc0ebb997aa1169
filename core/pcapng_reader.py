"""pcapng reading (draft-ietf-opsawg-pcapng), the half of
:class:`dicomwire.capture.CaptureReader` that reads it: several sections
(each with its own byte order and interfaces), Enhanced (6), Simple (3) and
obsolete Packet (2) blocks, ``if_tsresol`` (option 9) and ``if_tsoffset``
(option 14), ``opt_comment`` (1) kept per frame; every other block type is
skipped. Blocks are read one by one here; a walker (the fast path) takes
the runs of plain Enhanced Packet Blocks in between, in place.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from dicomwire.capsource import WINDOW

PCAPNG_SHB = 0x0A0D0D0A


class Interface(NamedTuple):
    linktype: int
    snaplen: int
    name: str | None
    section: int
    tsresol: int = 6           # exponent; see ``tsbase``
    tsbase: int = 10           # 10 (decimal) or 2 (binary) resolution
    tsoffset: int = 0          # seconds added to every timestamp


class PcapngBlocks:
    """Block by block: a mixin of CaptureReader, whose buffer (``_buf``,
    ``_pos``, ``_need``), counters and findings it shares."""

    # The current pcapng section's Enhanced Packet Block layout, for a
    # walker: (unpack of type, length, interface, ts high, ts low, captured,
    # original; unpack of the trailer; per section-local interface (ts_ns =
    # ((ticks * multiplier) >> shift) + offset: the multiplier, or None where
    # the block must be read here (a resolution finer than 1 ns); shift;
    # offset; link type; global interface index)). A walker keeps the
    # comments of a block with options (packet_options).
    epb_layout = None

    def _pcapng(self):
        """Block by block; a walker takes the runs of plain Enhanced Packet
        Blocks in between, in place."""
        self._order, self._ifaces, self._section = "<", [], -1
        self._last_ts = 0              # a Simple Packet Block repeats the previous time
        self._layout()
        mapped = self.src.mapped is not None
        while True:
            if self.walker is not None and self.frames_read:
                pos, buf = self._pos, self._buf
                self.walker(buf, pos, min(len(buf), pos + WINDOW) if mapped else len(buf))
            if mapped and self._pos - self._released >= 2 * WINDOW:
                self._release()
            block = self._block()
            if block is None:
                break
            btype, blen, pos, where = block
            if btype == 6 or btype == 2:        # Enhanced / obsolete Packet Block
                frame = self._packet_block(btype, blen, pos, where)
            elif btype == 3:
                frame = self._simple_block(blen, pos, where)
            else:
                frame = None
                if btype == 1:
                    self._interface_block(blen, pos, where)
                elif btype == PCAPNG_SHB:
                    self._section += 1
                    self._ifaces = []
                    self._layout()
                # other blocks (name resolution, statistics, custom, ...): skipped
            if frame is not None:
                yield frame
        self.bytes_read += self._pos

    def _layout(self):
        """Re-derive :attr:`epb_layout` after the section or its interfaces changed."""
        order = self._order
        fast = []
        self._clocks = [_clock(self.interfaces[gi]) for gi in self._ifaces]
        for gi, (mult, shift, div, add) in zip(self._ifaces, self._clocks):
            fast.append((mult if div == 1 else None, shift, add, self.interfaces[gi].linktype, gi))
        self.epb_layout = (struct.Struct(order + "IIIIIII").unpack_from,
                           struct.Struct(order + "I").unpack_from, fast)

    def _block(self):
        """The block at the read position, checked and wholly in the buffer:
        (type, length, its buffer position, its file offset), the read
        position moved past it; None where reading stops (with a warning)."""
        if not self._need(12):
            if len(self._buf) - self._pos:
                self._stop("capture cut in a block header", self._offset())
            return None
        buf, pos = self._buf, self._pos
        btype = struct.unpack_from(self._order + "I", buf, pos)[0]
        if btype == PCAPNG_SHB:
            bom = buf[pos + 8:pos + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                self._order = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                self._order = ">"
            else:
                self._stop(f"pcapng section header with bad byte-order magic {bom.hex()}",
                           self._offset())
                return None
        order = self._order
        blen = struct.unpack_from(order + "I", buf, pos + 4)[0]
        where = self._offset()
        if blen < 12 or blen % 4 or blen > self.max_record + 64:
            self._stop(f"implausible pcapng block length {blen} (block type 0x{btype:x})", where)
            return None
        if not self._need(blen):
            self._stop(f"capture cut mid-block: pcapng block type 0x{btype:x} needs "
                       f"{blen} bytes, {len(self._buf) - self._pos} present", where)
            return None
        buf, pos = self._buf, self._pos
        trailer = struct.unpack_from(order + "I", buf, pos + blen - 4)[0]
        if trailer != blen:
            self._stop(f"pcapng block length mismatch ({blen} vs trailer {trailer})", where)
            return None
        self._pos = pos + blen
        return btype, blen, pos, where

    def _packet_block(self, btype, blen, pos, where):
        """An Enhanced (6) or obsolete Packet Block (2): its frame, or None if
        malformed (skipped, with a warning)."""
        buf, order, ifaces = self._buf, self._order, self._ifaces
        body, end = pos + 8, pos + blen - 4
        try:
            if btype == 6:
                iid, tsh, tsl, incl, orig = struct.unpack_from(order + "IIIII", buf, body)
            else:
                iid, _drops, tsh, tsl, incl, orig = struct.unpack_from(order + "HHIIII", buf, body)
        except struct.error:
            # Fix: a block shorter than its fixed fields at the very end of
            # the input (mid-input the overrun check below catches it).
            self.warnings.append(
                f"{self.name}: malformed packet block at byte offset {where} "
                f"(block length {blen} is shorter than its fixed fields); skipped")
            return None
        data_at = body + 20
        if data_at + incl > end or iid >= len(ifaces):
            self.warnings.append(
                f"{self.name}: malformed packet block at byte offset {where} "
                f"({'unknown interface %d' % iid if iid >= len(ifaces) else 'captured length %d overruns the block' % incl}); skipped")
            return None
        gi = ifaces[iid]
        itf = self.interfaces[gi]
        mult, shift, div, add = self._clocks[iid]
        ts = self._last_ts = (((tsh << 32) | tsl) * mult >> shift) // div + add
        number = self.frames_read = self.frames_read + 1
        if number == 1:
            self.first_ts = ts
        if incl < orig:
            self.truncated += 1
        opt_at = data_at + ((incl + 3) & ~3)
        if opt_at < end:
            self.packet_options(number, buf, opt_at, end)
        return number, ts, itf.linktype, buf[data_at:data_at + incl], orig, gi

    def packet_options(self, number: int, buf, at: int, end: int):
        """The options of frame ``number``'s packet block, ``buf[at:end]``:
        its comments (opt_comment) are kept; the rest is not needed."""
        for code, val in _options(buf, at, end, self._order):
            if code == 1:
                self.comments.setdefault(number, []).append(val.decode("utf-8", "replace"))

    def _simple_block(self, blen, pos, where):
        """A Simple Packet Block: its frame (no timestamp: the previous
        frame's is repeated, so relative times stay monotonic), or None."""
        if blen < 16:
            # Fix: no room for the original length: the trailer would be
            # read as one and a bogus empty frame yielded.
            self.warnings.append(f"{self.name}: malformed simple packet block at byte offset "
                                 f"{where} (block length {blen}); skipped")
            return None
        if not self._ifaces:
            self.warnings.append(f"{self.name}: simple packet block before any "
                                 f"interface at byte offset {where}; skipped")
            return None
        buf, body, end = self._buf, pos + 8, pos + blen - 4
        gi = self._ifaces[0]
        itf = self.interfaces[gi]
        orig = struct.unpack_from(self._order + "I", buf, body)[0]
        incl = min(orig, end - body - 4)
        if itf.snaplen:
            incl = min(incl, itf.snaplen)
        number = self.frames_read = self.frames_read + 1
        if number == 1:
            self.first_ts = self._last_ts
        if incl < orig:
            self.truncated += 1
        return number, self._last_ts, itf.linktype, buf[body + 4:body + 4 + incl], orig, gi

    def _interface_block(self, blen, pos, where):
        """An Interface Description Block: the next interface of the section."""
        buf, order, body, end = self._buf, self._order, pos + 8, pos + blen - 4
        if blen < 20:
            # Fix: shorter than its fixed fields (struct.error at the end of
            # the input, a bogus interface elsewhere). Keep its place in the
            # section's numbering, with link type 0xFFFF (unassigned): its
            # frames count as an unsupported link.
            self.warnings.append(
                f"{self.name}: malformed interface description block at byte "
                f"offset {where} (block length {blen}); its frames are skipped")
            self._ifaces.append(len(self.interfaces))
            self.interfaces.append(Interface(0xFFFF, 0, None, self._section))
            self._layout()
            return
        linktype, _res, snaplen = struct.unpack_from(order + "HHI", buf, body)
        tsresol, tsbase, tsoffset, name = 6, 10, 0, None
        for code, val in _options(buf, body + 8, end, order):
            if code == 9 and val:
                tsbase = 2 if val[0] & 0x80 else 10
                tsresol = val[0] & 0x7F
            elif code == 14 and len(val) == 8:
                tsoffset = struct.unpack(order + "q", val)[0]
            elif code == 2:
                name = val.decode("utf-8", "replace")
        if tsbase == 10 and tsresol > 30 or tsbase == 2 and tsresol > 96:
            self.warnings.append(f"{self.name}: implausible if_tsresol {tsresol} at "
                                 f"byte offset {where}; using microseconds")
            tsresol, tsbase = 6, 10
        self._ifaces.append(len(self.interfaces))
        self.interfaces.append(
            Interface(linktype, snaplen, name, self._section, tsresol, tsbase, tsoffset))
        self._layout()


def _clock(itf: Interface):
    """An interface's timestamps in ns: ((ticks * mult) >> shift) // div + add
    (if_tsresol: 10^-r or 2^-r seconds; if_tsoffset: seconds added)."""
    r, add = itf.tsresol, itf.tsoffset * 1_000_000_000
    if itf.tsbase == 2:
        return 1_000_000_000, r, 1, add
    if r <= 9:
        return 10 ** (9 - r), 0, 1, add
    return 1, 0, 10 ** (r - 9), add


def _options(buf, at: int, end: int, order: str):
    """pcapng options (code, value) between at and end; stops at opt_endofopt
    or at the first option that would overrun its block."""
    hdr = struct.Struct(order + "HH")
    while at + 4 <= end:
        code, length = hdr.unpack_from(buf, at)
        if code == 0:
            return
        at += 4
        if at + length > end:
            return
        yield code, bytes(buf[at:at + length])
        at += (length + 3) & ~3
