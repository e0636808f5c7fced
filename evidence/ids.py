"""Identifiers and digests that must not be mixed up (`typing.NewType`: free at run time).

Each is a plain `str` or `int` to the database and the wire; to mypy a case id
is not an item id, and an item id is not the SHA-256 of the item's bytes.
Values become these types where they are parsed or read back from the
database, never by a bare cast in the middle of the code.
"""

from __future__ import annotations

from typing import NewType

ItemId = NewType("ItemId", str)  # lowercase hex SHA-256 of the item's manifest bytes
CaseId = NewType("CaseId", str)  # opaque random hex: all the log ever sees of a case
DeviceId = NewType("DeviceId", str)  # derived from the device's verifier key
UserId = NewType("UserId", str)  # opaque random hex: all the log ever sees of a person
UploadId = NewType("UploadId", str)  # a tus upload in progress
Sha256Hex = NewType("Sha256Hex", str)  # lowercase hex SHA-256 of an object's bytes
LeafIndex = NewType("LeafIndex", int)  # an entry's index in the custody log
