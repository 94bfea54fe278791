"""Revisions of the schema, oldest first: v<number>_<what it does>.py."""
