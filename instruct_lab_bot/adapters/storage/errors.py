"""The one error the storage adapter raises."""

from __future__ import annotations


class StorageError(Exception):
    """The object store failed; the message names the key and the reason, never credentials."""
