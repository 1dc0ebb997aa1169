"""dicomwire: DICOM network traffic from packet captures, decoded and explained.

The engine in this package knows no protocol: it reads captures
(:mod:`dicomwire.capture`), decodes link/IP/TCP (:mod:`dicomwire.link`),
reassembles TCP streams (:mod:`dicomwire.tcp`) and hands them, in one pass
(:mod:`dicomwire.pipeline`), to plugins (:mod:`dicomwire.hookspecs`).
"""

__version__ = "0.1.0"
