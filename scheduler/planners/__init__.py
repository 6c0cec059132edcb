"""Planners: ticks that look at the database and write outbox rows with idempotency keys.

Every process runs every planner; the keys make a second run (or a second process) a no-op.
"""
