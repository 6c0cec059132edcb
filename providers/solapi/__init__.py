"""SOLAPI (solapi.com, formerly CoolSMS): SMS/LMS/MMS, AlimTalk and Kakao brand messages.

Facts are in PROTOCOLS.md §2.3, §3 and §4. The adapter

* signs every request with a fresh ``HMAC-SHA256`` header (new date and salt each time, so a
  retry never trips ``DuplicatedSignature``);
* sizes texts by CP949 bytes (`providers.sms_text`): SMS ≤ 90 bytes, else LMS ≤ 2000 bytes
  with a subject ≤ 40; unencodable characters are substituted or refused, never sent as "?";
  texts over 2000 bytes are refused (see sms_text for why we do not split);
* sends a message with a picture as MMS: the JPEG at `Outgoing.image_path` is checked
  locally (jpg, ≤ 200 KB, ≤ 1500×1440 — refused with a Korean reason otherwise), uploaded
  with ``POST /storage/v1/files`` (type MMS), and the message carries the ``imageId``;
* sends an informational message with a `template` as AlimTalk (``ATA``) and an
  advertising one with a `template` as a brand message (브랜드 메시지, ``BMS_TEXT``, see
  `SolapiProvider.build_message`), both with SMS fallback;
* holds brand messages to Kakao's hours (08:00–20:00 KST, SOLAPI 3108: `hours.py`): outside
  them a brand message is `NotYet` until 08:00 KST, so the outbox waits without counting a
  try. The law's rules for ads — consent, the 21:00–08:00 night ban, ``(광고)`` at the start
  and a free opt-out line at the end — are the send-time policy's (`scheduler.policy`): an
  ad that breaks them is held or dropped before any adapter sees it;
* sends a batch with one ``POST /messages/v4/send-many/detail`` (≤ 10 000 messages), our
  outbox id in ``customFields.ourId``; per-message failures are read from
  ``failedMessageList`` and classified by status code (`classify_status`);
* turns whole-call failures into one error per message (`send` never raises a
  ProviderError), so a message refused locally keeps its own reason;
* reconciles an unknown outcome with ``GET /messages/v4/list`` (`lookup`): by message id
  when we have it, else by a creation-date window around the attempt, matched on ourId;
  only a search read to its end answers "not there" — a failed one raises;
* reads delivery-report webhooks into `DeliveryReport`s (`parse_report`).

One job a module:

    client.py   the signed request and what its answer means (the error table)
    signing.py  the HMAC-SHA256 header
    codes.py    status codes → the error family (`classify_status`)
    hours.py    Kakao's brand-message hours
    wire.py     endpoints, numbers, message types, our id in customFields
    images.py   the MMS picture checked against the provider's image facts
    provider.py `SolapiProvider`: its facts, building and sending messages
    lookup.py   reconciling an unknown outcome with SOLAPI's list
    reports.py  delivery-report webhooks → `DeliveryReport`s
"""

from providers.solapi.client import DEFAULT_BASE_URL, SolapiClient
from providers.solapi.codes import (
    SolapiAccountError,
    SolapiOptedOut,
    SolapiRecipientError,
    classify_status,
)
from providers.solapi.images import jpeg_size, read_mms_image
from providers.solapi.provider import MAX_BATCH, SolapiProvider
from providers.solapi.reports import parse_report, status_for_code
from providers.solapi.signing import auth_header, parse_auth_header, signature
from providers.solapi.wire import (
    LIST_PATH,
    OUR_ID,
    SEND_PATH,
    STORAGE_PATH,
    path_for_type,
    to_national_number,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "LIST_PATH",
    "MAX_BATCH",
    "OUR_ID",
    "SEND_PATH",
    "STORAGE_PATH",
    "SolapiAccountError",
    "SolapiClient",
    "SolapiOptedOut",
    "SolapiProvider",
    "SolapiRecipientError",
    "auth_header",
    "classify_status",
    "jpeg_size",
    "parse_auth_header",
    "parse_report",
    "path_for_type",
    "read_mms_image",
    "signature",
    "status_for_code",
    "to_national_number",
]
