"""Photos: untrusted uploads in, clean JPEGs out, kept outside any static root.

`cleaning` turns whatever a phone sent into a JPEG we are willing to keep (`prepare`) and
squeezes such a JPEG under SOLAPI's MMS limits (`for_mms`). `store` keeps the files under
random names in the configured directory (never a static root: they are served only
through handlers that check who is asking). `records` writes and reads the `photos` rows
and the attachments messages carry. `outbox` hands a reply's photo to the outbox
(core/outbox.py `PhotoResolver`).
"""
