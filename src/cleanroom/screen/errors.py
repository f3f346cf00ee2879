"""Screening errors: a list file that is not what it claims to be, a query
that cannot be screened, an infrastructure manifest that does not parse."""

from __future__ import annotations

from cleanroom.storage.errors import CleanroomError


class ListFormatError(CleanroomError):
    """A list file does not have the format it was loaded as."""

    status = 422
    title = "Malformed list file"


class ScreeningInputError(CleanroomError):
    """A name, batch or option that cannot be screened."""

    status = 422
    title = "Cannot screen this input"


class ManifestError(CleanroomError):
    """An infrastructure manifest that is not valid."""

    status = 422
    title = "Malformed infrastructure manifest"
