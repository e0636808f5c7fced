"""Cases and their items as people read them: the opaque case id and the council's reference
(`registry`), items' metadata and custody histories (`items`), and their routes
(``/api/v1/cases``, ``/api/v1/items/{item}``, ``/api/v1/items/{item}/custody``).
"""
