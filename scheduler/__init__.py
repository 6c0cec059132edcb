"""What runs by the clock: `loop.py` (the ticks, declared in one table), `dispatch/` (sending
the outbox, one module per stage) and `planners/` (ticks that write outbox rows).

It imports `core` and `providers`, never `bot`: the app hands it what it needs (a photo
resolver); what its units change reaches the consoles as after-commit signals
(`core.delivery.StatusChanged`).
"""
