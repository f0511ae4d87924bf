"""Credentials: digest, tokens and their life, Enlighten, which gateway may hold a serial's tokens."""
