"""Fake vendor servers for tests: aiohttp apps served on 127.0.0.1."""
