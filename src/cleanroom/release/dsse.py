"""DSSE envelopes for releases: ``cleanroom.ledger.dsse`` (where the oversight
body's monitor verifies them too), with its errors raised as
:class:`~cleanroom.release.errors.AttestationError`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from cleanroom.ledger import dsse as _dsse
from cleanroom.ledger.errors import EnvelopeError
from cleanroom.release.errors import AttestationError

INTOTO_PAYLOAD_TYPE = _dsse.INTOTO_PAYLOAD_TYPE
pae = _dsse.pae
key_id = _dsse.key_id

F = TypeVar("F", bound=Callable[..., Any])


def _as_release_error(fn: F) -> F:
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EnvelopeError as e:
            raise AttestationError(e.message, e.hint) from None

    return wrapped  # type: ignore[return-value]


sign = _as_release_error(_dsse.sign)
parse = _as_release_error(_dsse.parse)
verify = _as_release_error(_dsse.verify)
