"""The custody log's I/O around the pure core: one linear log in the database (`custody`:
appends, checkpoints, proofs), its tables, item histories with proofs (`history`), the
signing key (`keys`), the high-water mark (`highwater`), `fsck`, the outside monitor
(`monitor`) and the public ``/log/`` routes (`routes`).
"""
