"""SOP Classes whose pixel data is known to carry burned-in text (patient
names, IDs, dates drawn into the image), for ``deidentify``'s summary. Their
names come from :data:`dicomwire.specs.dicom.uids.UID_NAMES`.

Why each is here:

- Ultrasound (PS3.15 E.3.1 Clean Pixel Data Option, Note 1: "CT images do
  not normally contain such burned in annotation, whereas Ultrasound images
  routinely do"), single and multi-frame, retired classes included.
- Secondary Capture, single and multi-frame (PS3.3 A.8: images converted
  from non-DICOM formats: video frame grabbers, film digitisers, screen
  captures of workstations, such as dose reports and processed nuclear
  medicine or 3D screens), where whatever was on the screen is in the pixels.
- Video Endoscopic, Microscopic and Photographic (PS3.3 A.32): recorded from
  the device's video output, which shows its on-screen overlay.

Not here: Encapsulated PDF and CDA, whose document is the Encapsulated
Document (0042,0011) the profile replaces (PS3.15 Table E.1-1: D), not
pixel data. Any other object counts when its data set says Burned In
Annotation (0028,0301) is YES (PS3.3 C.7.6.1.1.3).
"""

BURNED_IN_ANNOTATION = 0x00280301

SOP_CLASSES = frozenset((
    "1.2.840.10008.5.1.4.1.1.6.1",          # Ultrasound Image Storage
    "1.2.840.10008.5.1.4.1.1.6",            # Ultrasound Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.3.1",          # Ultrasound Multi-frame Image Storage
    "1.2.840.10008.5.1.4.1.1.3",            # Ultrasound Multi-frame Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.7",            # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.7.1",          # Multi-frame Single Bit Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.2",          # Multi-frame Grayscale Byte Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.3",          # Multi-frame Grayscale Word Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.4",          # Multi-frame True Color Secondary Capture
    "1.2.840.10008.5.1.4.1.1.77.1.1.1",     # Video Endoscopic Image Storage
    "1.2.840.10008.5.1.4.1.1.77.1.2.1",     # Video Microscopic Image Storage
    "1.2.840.10008.5.1.4.1.1.77.1.4.1",     # Video Photographic Image Storage
))
