"""The gate: principals, tokens, Cedar policies and purposes — the one place that
decides and records every access to protected data."""

from cleanroom.gate.deletion import Deletions, OrderError, Receipt
from cleanroom.gate.gate import RESOURCE_CLASSES, Decision, Gate, Verdict
from cleanroom.gate.policy import PolicyBundle, PolicyError, load_dir, load_files, shipped
from cleanroom.gate.principals import (
    ORGS,
    Principal,
    PrincipalError,
    Principals,
    Unauthenticated,
    UnknownPrincipal,
)

__all__ = [
    "ORGS",
    "RESOURCE_CLASSES",
    "Decision",
    "Deletions",
    "Gate",
    "OrderError",
    "PolicyBundle",
    "PolicyError",
    "Principal",
    "PrincipalError",
    "Principals",
    "Receipt",
    "Unauthenticated",
    "UnknownPrincipal",
    "Verdict",
    "load_dir",
    "load_files",
    "shipped",
]
