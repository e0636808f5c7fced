"""People: users, roles, passwords and API tokens (`accounts`), who may do what (`policy`,
deny by default), who is asking (`access`), web sessions (`sessions`), password login
(`login`) and its throttling (`throttle`).
"""
