"""Customer import: the shop's existing list (.xlsx or CSV) read (`reading`), checked row
by row against the catalogue (`validating`), and written in one transaction (`unit`)."""

from core.importing.reading import MAX_ROWS, Cell, FileRefused, Formula, Sheet, read_sheet
from core.importing.validating import (
    HEADERS,
    Consent,
    Line,
    PastJob,
    Person,
    Plan,
    Refusal,
    plan_import,
)

__all__ = [
    "HEADERS",
    "MAX_ROWS",
    "Cell",
    "Consent",
    "FileRefused",
    "Formula",
    "Line",
    "PastJob",
    "Person",
    "Plan",
    "Refusal",
    "Sheet",
    "plan_import",
    "read_sheet",
]
