"""Cleanroom: a verifiable clean room for a social video platform."""

__version__ = "0.1.0"
