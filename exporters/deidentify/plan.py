"""What to change in one data set or command set: the profile's action for
each element (PS3.15 Table E.1-1, :mod:`dicomwire.specs.dicom.deid_table`,
with the options asked for), turned into same-length patches relative to
the set's first byte. The structure (element and item headers, delimiters)
is never touched, so the output decodes element for element like the input.

A sequence the profile removes keeps its items and elements, every value
inside replaced (UIDs mapped, the rest blanked); private attributes are
blanked the same way; pixel data stays unless ``blank_pixels``.
"""

from __future__ import annotations

import re
import struct
from collections import Counter

from dicomwire.exporters.deidentify import dates
from dicomwire.exporters.deidentify.values import (DATES, TEXT_PSEUDONYM, Mapper, blank_text,
                                                   replace_value)
from dicomwire.specs.dicom import deid_table, dictionary
from dicomwire.specs.dicom.burned_in import BURNED_IN_ANNOTATION
from dicomwire.specs.dicom.command import COMMAND_ELEMENTS
from dicomwire.specs.dicom.dataset import (ITEM, ITEM_END, SEQ_END, UNDEFINED, DataSetError,
                                           walk)

PIXEL_TAGS = frozenset((0x7FE00008, 0x7FE00009, 0x7FE00010))
PIXEL_DATA = 0x7FE00010
# Command elements (PS3.7 E.1-1) whose values identify: SOP instances (acted
# on as the data set's SOP Instance UID (0008,0018) is: mapped, so a response
# still names its request's instance; kept under retain-uids), with --hosts
# AE titles, and free text, blanked: Error Comment (0000,0902, LO), which
# some SCPs fill with the patient's name or ID, and the retired text
# elements of PS3.7 E.2-1. Other elements are numbers, tags, SOP Class UIDs.
COMMAND_UIDS = frozenset((0x00001000, 0x00001001))
SOP_INSTANCE_UID = 0x00080018
COMMAND_AES = frozenset((0x00000200, 0x00000300, 0x00000400, 0x00000600, 0x00001030))
COMMAND_TEXT = frozenset((0x00000010, 0x00000902, 0x00004000, 0x00004010, 0x00005010,
                          0x00005020, 0x00005110, 0x00005120))
TEXT_SEARCHED = TEXT_PSEUDONYM | {"LT", "ST", "UT", "UC"}
KEPT_SEARCHED = frozenset(("UI", "DA", "DT", "TM", "AS"))    # kept values noted, besides text
TIMEZONE_OFFSET = 0x00080201     # SH holding "&ZZXX" (PS3.3 C.12.1.1.8): kept valid
MODIFIED_DATES = "retain-long-modified-dates"
MALFORMED_DATES = "dates and times not valid in their VR (blanked)"
MIN_SEARCHED = 4                 # shorter values are not searched for in the output
# A date or time searched for: 8 characters or more of digits and dots (DA,
# a DT without its UTC offset, a TM with its fraction; PS3.5 6.2), which the
# search counts only where no digit or dot touches it.
DATE_TOKEN = re.compile(rb"\d[\d.]{7,}")
FULL_DATES = "retain-long-full-dates"
MAX_DATE_SHIFT = 36500           # days: a century either way


def option_problem(options, date_shift: int | None) -> str | None:
    """What makes the options asked for contradict each other (a usage
    error), or None. PS3.15 E.3.6: the Longitudinal Temporal Information
    options keep dates either in full or modified, not both."""
    options = set(options or ())
    if date_shift is not None and abs(date_shift) > MAX_DATE_SHIFT:
        return f"--date-shift {date_shift}: at most {MAX_DATE_SHIFT} days either way"
    if FULL_DATES in options and MODIFIED_DATES in options:
        return f"--option {FULL_DATES} keeps dates, --option {MODIFIED_DATES} shifts them: " \
               f"choose one"
    if FULL_DATES in options and date_shift is not None:
        return f"--date-shift moves dates, --option {FULL_DATES} keeps them: choose one"
    return None


class NeedWhole(Exception):
    """The head of the data set did not settle it: walk the whole of it."""


class Profile:
    """The Basic Profile's actions, with options (names of
    ``deid_table.OPTIONS``) overriding them, and the run's choices."""

    def __init__(self, options=(), blank_pixels: bool = False, hosts: bool = False,
                 date_shift: int | None = None):
        self.single = dict(deid_table.BASIC)
        self.repeating = list(deid_table.REPEATING)
        self.private = deid_table.PRIVATE
        for name in options:
            _title, _code, tags, repeating, private = deid_table.OPTIONS[name]
            self.single.update(tags)
            self.repeating[:0] = repeating
            if private:
                self.private = private
        self.options = tuple(options)
        self.blank_pixels, self.hosts = blank_pixels, hosts
        # Days by which the modified-dates option moves dates (its "C" actions).
        self.date_shift = date_shift if MODIFIED_DATES in self.options else None

    def action(self, tag: int) -> str:
        a = self.single.get(tag)
        if a is not None:
            return a
        group = tag >> 16
        if group & 1 and 8 < group < 0xFFFE:
            return self.private
        for mask, value, act in self.repeating:
            if tag & mask == value:
                return act
        return "K"


class Tally:
    """What the run replaced and what it must not find again: counts per
    attribute, original identifying values (for the self-check) and values
    it kept on purpose (a hit on one of those is the profile's choice)."""

    LIMIT = 1_000_000

    def __init__(self):
        self.counts: Counter = Counter()
        self.originals: dict[bytes, str] = {}
        self.kept: set[bytes] = set()
        self.burned_in = False      # the last data set said Burned In Annotation YES

    def replaced(self, name: str, vr: str | None, raw: bytes, new: bytes = b""):
        self.counts[name] += 1
        if vr == "UI" or vr in TEXT_SEARCHED or vr == "AS":
            for v in raw.split(b"\\"):
                v = v.strip(b" \0")
                if len(v) >= MIN_SEARCHED and len(self.originals) < self.LIMIT:
                    self.originals.setdefault(v, name)
            # A new value may be another attribute's original (a short ID's
            # pseudonym, by chance): it is in the output by design, so never
            # searched for (that attribute's own patch is checked as applied).
            if len(self.kept) < self.LIMIT:
                self.kept.update(v for v in (w.strip(b" \0") for w in new.split(b"\\"))
                                 if len(v) >= MIN_SEARCHED)
        elif vr in DATES and len(self.originals) < self.LIMIT:
            # Dates and times of 8 characters or more; the new ones (a shifted
            # date may be another attribute's original, a dummy may be one)
            # count as kept: never searched for.
            for v in DATE_TOKEN.findall(raw):
                self.originals.setdefault(v, name)
            self.kept.update(DATE_TOKEN.findall(new))

    def keep(self, vr, raw: bytes):
        if len(self.kept) >= self.LIMIT:
            return
        if vr in TEXT_SEARCHED or vr == "UI":
            for v in raw.split(b"\\"):
                v = v.strip(b" \0")
                if len(v) >= MIN_SEARCHED:
                    self.kept.add(v)
        elif vr in DATES or vr == "AS":
            self.kept.update(DATE_TOKEN.findall(raw) if vr != "AS" else [raw.strip(b" ")])


def keyword(tag: int) -> str:
    if (tag >> 16) & 1:
        return "private attributes"
    return dictionary.keyword(tag)


def plan_dataset(buf, implicit: bool, little: bool, total: int, profile: Profile,
                 mapper: Mapper, tally: Tally, patches: list | None = None) -> list:
    """Patches ``[(offset, bytes or a length of zeros)]`` for the data set
    whose first ``len(buf)`` of ``total`` bytes are ``buf`` (appended to
    ``patches`` when given). Raises DataSetError where the structure breaks,
    NeedWhole when ``buf`` is a head that ended before the data set's end
    was proven."""
    patches = [] if patches is None else patches
    removed = frag = None          # depth of a removed sequence / of encapsulated pixel data
    first_fragment = False
    elements = walk(buf, implicit, little, vr_of=dictionary.vr)
    try:
        for _pos, tag, vr, length, vpos, depth in elements:
            if removed is not None and depth <= removed:
                removed = None
            if frag is not None and depth <= frag:
                frag = None
            if tag == ITEM or tag == ITEM_END or tag == SEQ_END:
                if frag is not None and tag == ITEM:
                    if not first_fragment and profile.blank_pixels and length:
                        patches.append((vpos, length))
                    first_fragment = False
                continue
            if vr is None and not (tag >> 16) & 1:
                vr = dictionary.vr(tag)          # implicit VR: the dictionary's
            if tag in PIXEL_TAGS and depth == 0:
                if length == UNDEFINED:
                    frag, first_fragment = depth, True
                elif profile.blank_pixels and length:
                    patches.append((vpos, length))
                continue
            if tag == BURNED_IN_ANNOTATION and depth == 0:
                tally.burned_in = bytes(buf[vpos:vpos + length]).strip(b" \0") == b"YES"
            action = "X" if removed is not None else profile.action(tag)
            if vr == "SQ" or length == UNDEFINED:
                if action != "K" and removed is None:
                    removed = depth
                    tally.counts[keyword(tag)] += 1
                continue
            _value(buf, tag, vr, length, vpos, action, patches, mapper, tally,
                   profile.date_shift)
    except DataSetError as e:
        if len(buf) < total and e.kind == "truncated" and e.tag == PIXEL_DATA and \
                _pixels_to_end(buf, e.offset, implicit, little, total, profile, patches):
            return patches
        if len(buf) < total and e.kind == "truncated":
            raise NeedWhole from e
        raise
    if len(buf) < total:
        raise NeedWhole
    return patches


def plan_prefix(buf, implicit: bool, little: bool, profile: Profile, mapper: Mapper,
                tally: Tally) -> tuple[list, int]:
    """A data set of which only ``buf`` is known, the rest lost (a gap, the
    capture's end): patches for the elements ``buf`` holds whole, and where
    the walk stopped, from which everything is to be blanked (the element
    the cut went through, header and all). DataSetError for a break that is
    not the cut."""
    patches: list = []
    try:
        plan_dataset(buf, implicit, little, len(buf), profile, mapper, tally, patches)
        return patches, len(buf)
    except DataSetError as e:
        if e.kind not in ("truncated", "unterminated"):
            raise
        return [p for p in patches if p[0] < e.offset], e.offset


def _value(buf, tag, vr, length, vpos, action, patches, mapper, tally, shift=None):
    if not length:
        return
    if action == "K":
        if vr in TEXT_SEARCHED or vr in KEPT_SEARCHED:
            tally.keep(vr, bytes(buf[vpos:vpos + length]))
        return
    if vr not in TEXT_SEARCHED and vr not in ("UI", "DA", "DT", "TM", "CS", "IS", "DS",
                                               "AS", "UR"):
        patches.append((vpos, length))          # binary, or unknown: zeros
        tally.counts[keyword(tag)] += 1
        return
    raw = bytes(buf[vpos:vpos + length])
    if vr in DATES:
        if action == "C" and shift is not None:
            new, valid = dates.shift(raw, vr, shift)
        else:
            new, valid = dates.dummy(raw, vr)
        if not valid:
            tally.counts[MALFORMED_DATES] += 1
    elif tag == TIMEZONE_OFFSET:
        new = dates.utc_offset(raw)
    else:
        new = replace_value(mapper, vr, raw)
    if new != raw:
        patches.append((vpos, new))
        tally.replaced(keyword(tag), vr, raw, new)


def _pixels_to_end(buf, pos, implicit, little, total, profile, patches) -> bool:
    """The head ended inside a top-level Pixel Data value: True when that
    value runs to the data set's end (nothing after it to look at)."""
    order = "<" if little else ">"
    if implicit:
        length, vpos = struct.unpack_from(order + "I", buf, pos + 4)[0], pos + 8
    else:
        if len(buf) < pos + 12:
            return False
        length, vpos = struct.unpack_from(order + "I", buf, pos + 8)[0], pos + 12
    if length == UNDEFINED or vpos + length != total:
        return False
    if profile.blank_pixels and length:
        patches.append((vpos, length))
    return True


def plan_command(buf, profile: Profile, mapper: Mapper, tally: Tally) -> list:
    """Patches for a command set (implicit VR little endian, PS3.7 6.3.1):
    SOP Instance UIDs as the profile acts on (0008,0018), free text blanked,
    AE titles with --hosts; an element PS3.7 does not define is zeroed (what
    cannot be read is not passed through). DataSetError when it does not walk."""
    patches = []
    uids = profile.action(SOP_INSTANCE_UID)
    for _pos, tag, _vr, length, vpos, _depth in walk(buf, True, True):
        if not length or length == UNDEFINED:
            continue
        raw = bytes(buf[vpos:vpos + length])
        if tag in COMMAND_UIDS:
            if uids == "K":
                tally.keep("UI", raw)
                continue
            vr, new = "UI", replace_value(mapper, "UI", raw)
        elif tag in COMMAND_TEXT:
            vr, new = "LO", blank_text(raw)
        elif profile.hosts and tag in COMMAND_AES:
            vr, new = "AE", replace_value(mapper, "AE", raw)
        elif tag >> 16 or (tag & 0xFFFF) not in COMMAND_ELEMENTS:
            patches.append((vpos, length))
            tally.counts["command elements PS3.7 does not define"] += 1
            continue
        else:
            continue
        if new != raw:
            patches.append((vpos, new))
            tally.replaced(keyword(tag), vr, raw)
    return patches
