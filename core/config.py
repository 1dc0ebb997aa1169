"""The run's configuration: options every command shares.

Issue 6 grows this into full preferences (config file, ``-o name:value``
with Wireshark's DICOM preference names, sources shown by ``dicomwire prefs``);
the engine only reads what it needs from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dicomwire.tcp import MAX_FLOWS, MAX_OOO


@dataclass
class Config:
    plugins: list[str] = field(default_factory=list)   # -p: modules to load, no:NAME to block
    options: dict[str, str] = field(default_factory=dict)  # -o name:value, raw
    max_ooo: int = MAX_OOO      # out-of-order bytes held per direction before a gap
    max_flows: int = MAX_FLOWS  # TCP flows tracked at once; beyond, the idlest are evicted
    ports: str = "104,11112"    # TCP ports dissected as DICOM (Wireshark's "DICOM Ports")
    heuristic: bool = True      # look for an A-ASSOCIATE-RQ on any other port
    show_secrets: bool = False  # user identity passcodes shown instead of masked
    seq_tree: bool = True       # show -V: subtrees for sequences and items
    tag_tree: bool = False      # show -V: per-tag detail
    pdv_reassemble: bool = True  # show -V: decode data sets merged from their PDVs
    export_header: bool = True  # export: File Meta Information header
    export_minsize: int = 10    # export: objects below this size are left out
    state: dict = field(default_factory=dict)   # per-run scratch space for plugins
    prefs: list = field(default_factory=list)   # every known Preference (after set-up)
    effective: dict = field(default_factory=dict)  # name -> (value, source)
    progress: bool = False      # progress line on stderr
    dissect: bool = True        # False: TCP only, no protocol dissectors (streams)
    fast_path: bool = True      # the fused Ethernet/IPv4/TCP in-order loop (tests turn it off)

    @property
    def blocked(self) -> list[str]:
        return [p[3:] for p in self.plugins if p.startswith("no:")]

    @property
    def load(self) -> list[str]:
        return [p for p in self.plugins if not p.startswith("no:")]
