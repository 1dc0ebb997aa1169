"""Built-in plugins, registered by short name (``-p no:NAME`` blocks one).

Each entry maps a short name to the module that implements its hooks. The
engine reads this table through the ``dicomwire.builtins`` entry point
(``pyproject.toml``), without importing the package.
"""

BUILTIN: dict[str, str] = {
    "dicom": "dicomwire.plugins.dicom",
    "dicom-expert": "dicomwire.plugins.dicom.expert",
    "dicom-expert-ts": "dicomwire.plugins.dicom.expert_ts",
    "dicom-qr": "dicomwire.plugins.dicom.qr",
    "dicom-nservice": "dicomwire.plugins.dicom.nservices",
    "dicom-commands": "dicomwire.plugins.dicom.commands",
}
