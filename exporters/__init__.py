"""Exporters: plugins that write files (Part 10 objects, annotated pcapng),
and the commands that use them.

:data:`BUILTIN` is this package's table of built-in plugins (short name ->
module), read through the ``dicomwire.builtins`` entry point.
"""

BUILTIN: dict[str, str] = {
    "dicom-exporters": "dicomwire.exporters.commands",
}
