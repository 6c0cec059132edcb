"""Twilio Programmable Messaging (PROTOCOLS.md §5): SMS/MMS to non-Korean numbers.

One POST per message to `/2010-04-01/Accounts/{sid}/Messages.json` (form-encoded, HTTP
Basic auth). Every answer is mapped here, once:

    201 + Message JSON                → SendResult("accepted", sid, path "sms" | "mms")
    400 code 21610                    → OptedOut("수신거부한 번호예요", code "21610")
    other 4xx (21211 bad number, …)   → PermanentError(code = Twilio's error code)
    401 / 403                         → PermanentError (credentials), code "auth"
    429                               → RateLimited(retry_after = Retry-After)
    5xx, timeout / reset after the request left, unreadable 201
                                      → UnknownOutcome (reconcile with lookup first)
    connection refused / connect timeout (nothing left)
                                      → TransientError

`lookup` — Twilio has no search by a client reference, so:
  * with the Message SID (the outbox stores it once a send succeeded): GET Messages/{sid}.json;
  * without it (the answer to the create call was lost, or the sender was killed): list
    `Messages.json?To=…[&From=…]` (newest 50) and take the earliest outbound message with
    exactly our body created since just before our attempt and not already claimed by
    another ref. Recipient, body and attempt time come from this process's memory of the
    attempt, else from the `SendRef` the outbox builds from its row — so any process can
    reconcile a send another one made. Without them: `CannotTell`, and the owner decides
    (the console's 다시 보내기), never a silent second copy. (Twilio's `DateSent` filter is
    not used: a message still queued has no date_sent and would be missed.)

Only a listing that was read in full and holds no such message answers None ("not sent",
so the outbox may send it again). A failed or unreadable answer raises, and so does a page
too full to reach back to the attempt: the outbox asks again later.

One job a module: `provider` (TwilioProvider: sending, lookup, media), `errors` (every
answer → the error family), `callbacks` (status callbacks → `DeliveryReport`, inbound SMS);
the signature check is `providers.twilio_signature`.
"""

from providers.twilio.callbacks import (
    InboundSms,
    map_status,
    opt_out_keyword,
    parse_inbound,
    parse_status,
)
from providers.twilio.errors import ERROR_REASONS, OPT_OUT_CODE, error_for, reason_for
from providers.twilio.provider import (
    API_VERSION,
    LOOKUP_PAGE_SIZE,
    MAX_BODY_CHARS,
    TwilioProvider,
)

__all__ = [
    "API_VERSION",
    "ERROR_REASONS",
    "LOOKUP_PAGE_SIZE",
    "MAX_BODY_CHARS",
    "OPT_OUT_CODE",
    "InboundSms",
    "TwilioProvider",
    "error_for",
    "map_status",
    "opt_out_keyword",
    "parse_inbound",
    "parse_status",
    "reason_for",
]
