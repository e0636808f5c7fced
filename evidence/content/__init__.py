"""Content reads: an item's original bytes with HTTP ranges (`ranges`), each viewing
logged in the custody log before the first byte goes out (`viewings`), and the route
``/api/v1/items/{item}/content``.
"""
