"""The reference device client: what a body camera or a worker's phone runs.

It keeps its state in one directory: its signing key, its manifest counter
(``seq``/``prev``), its bearer token once enrolled, and the receipts the
service gave it.
"""
