"""Built-in plugins, registered by short name (``-p no:NAME`` blocks one).

Each entry maps a short name to the module that implements its hooks; the
DICOM pack's plugins are added here as they land.
"""

BUILTIN: dict[str, str] = {
    "dicom": "dicomwire.plugins.dicom",
    "dicom-expert": "dicomwire.plugins.dicom.expert",
    "dicom-expert-ts": "dicomwire.plugins.dicom.expert_ts",
    "dicom-qr": "dicomwire.plugins.dicom.qr",
    "dicom-nservice": "dicomwire.plugins.dicom.nservices",
}
