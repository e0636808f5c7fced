"""The pure core of `evidence`: canonical encoding, Merkle tree, proofs, signed notes,
checkpoints and custody entry types. No I/O, no clock, no logging: it takes bytes,
keys and times as arguments and returns values or raises `VerificationError`."""
