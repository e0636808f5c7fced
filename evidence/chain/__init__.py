"""The pure core of `evidence`: canonical encoding, Merkle tree, proofs, signed notes,
checkpoints and custody entry types. No I/O, no clock, no logging: it takes bytes,
keys and times as arguments and returns values or raises an `EvidenceError`.

What a court's expert reads to check the service's claims, each `verify_*` raising
`VerificationError` on any failure:

* `merkle`: RFC 6962 hashing, `verify_inclusion`, `verify_consistency`;
* `note`: C2SP signed notes and keys, `verify_note`;
* `checkpoint`: checkpoints and tlog-proofs, `verify_checkpoint`, `verify_tlog_proof`;
* `manifest`: capture manifests, `verify_manifest_signature`;
* `receipt`: a device's receipt, `verify_receipt`;
* `canonical`, `entries`, `fields`: the exact bytes that are signed and logged.

What the service uses to build trees and proofs stands apart, in `tree`.
"""
