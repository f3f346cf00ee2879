"""Restricted-party screening: lists, name matching, ownership rules and the
infrastructure ("Clean Network") check. Depends on nothing but its data."""
