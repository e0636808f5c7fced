"""evidence: tamper-evident custody of body-camera footage and visit records."""

__version__ = "0.1.0"
