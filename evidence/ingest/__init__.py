"""From a device's signed manifest and bytes to a committed item and its receipt: tus
(`tus`), uploads and their staged parts (`service`, `staging`), the resumable SHA-256
(`hashing`). See `service` for the order of events that makes an item trustworthy.
"""
