"""Contracts shared by every service: the label set, wire schemas, settings base, HTTP helpers."""
