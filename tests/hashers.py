"""Argon2 with tiny cost parameters, for tests only.

Hashes it makes are ordinary argon2 hashes (the parameters travel inside the hash), so a real Daphne
subprocess with the production hasher list still verifies them; the cast is built many times per run.
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class FastArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 64
    parallelism = 1
