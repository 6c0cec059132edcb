"""What test modules share: waiting for the app to settle, a database slower than the
webhooks' budget, the fake provider's registration, the console and Kakao helpers.

Imported as `support.<module>` (tests/ is on sys.path, as for `fakes`). A test module never
imports another test module: what two of them need lives here.
"""
