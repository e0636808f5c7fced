"""Field devices on the service's side: enrolment and revocation (custody-log entries),
the device behind a bearer token (`registry`), and which worker carries which device
(`assignments`). The device's own side is `evidence.field`.
"""
