"""Names the documentation's examples use but do not define (their reader
brings their own): tests/test_doc_examples.py puts this folder on the path."""

from dicomwire.specs.dicom.pdu import SpecError, parse_pdu


def my_parser(data: bytes):
    """A parser under test, as the README's fuzzing example imagines one:
    dicomwire's own, which must raise SpecError and nothing else."""
    try:
        return parse_pdu(data)
    except SpecError:
        return None
