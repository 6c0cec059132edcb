"""What Twilio posts to us, parsed: status callbacks become `DeliveryReport`s (applied by
`core.delivery` like every vendor's), inbound texts `InboundSms` with Twilio's opt-out
keywords recognised. (The signature check is `providers.twilio_signature`.)"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from providers.base import DeliveryReport, DeliveryStatus, mask_phone
from providers.twilio.errors import OPT_OUT_CODE, reason_for

MAX_MEDIA = 10  # attachments of one message at most, either way

# --------------------------------------------------------------------------- status callbacks

# Twilio's MessageStatus in our words. "queued"/"accepted" mean Twilio has the message:
# sent, as far as we are concerned (Twilio sends no callback for its first status anyway).
_STATUS_MAP: dict[str, DeliveryStatus] = {
    "queued": DeliveryStatus.SENT,
    "accepted": DeliveryStatus.SENT,
    "scheduled": DeliveryStatus.SENT,
    "sending": DeliveryStatus.SENT,
    "sent": DeliveryStatus.SENT,
    "partially_delivered": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,
    "failed": DeliveryStatus.FAILED,
    "undelivered": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
}


def map_status(twilio_status: str) -> DeliveryStatus | None:
    """Twilio's MessageStatus in our words; None for statuses that are not about a send."""
    return _STATUS_MAP.get(twilio_status.strip().lower())


def parse_status(form: Mapping[str, str]) -> DeliveryReport | None:
    """A status-callback form → the report it makes; None when it is not about a send
    (receiving/received). Raises ValueError when the form is not a status callback."""
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    twilio_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not sid or not twilio_status:
        raise ValueError("not a Twilio status callback (MessageSid/MessageStatus missing)")
    ours = map_status(twilio_status)
    if ours is None:
        return None
    code = (form.get("ErrorCode") or "").strip() or None
    reason = ""
    if ours is DeliveryStatus.FAILED:
        reason = reason_for(code, f"Twilio: {twilio_status}")
    return DeliveryReport(
        # One event per status of a message: a redelivered callback is the same event.
        event_id=f"{sid}:{twilio_status}",
        message_id=sid,
        status=ours,
        code=code,
        detail=reason,
        reason=reason,
        opted_out=code == OPT_OUT_CODE,
        to=form.get("To") or None,
    )


# --------------------------------------------------------------------------- inbound SMS

OPT_OUT_WORDS = frozenset(
    {"STOP", "UNSUBSCRIBE", "END", "QUIT", "STOPALL", "REVOKE", "OPTOUT", "CANCEL"}
)
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def opt_out_keyword(body: str) -> Literal["stop", "start"] | None:
    """Twilio's default keywords: the whole message, any case, surrounding blanks/punctuation."""
    word = re.sub(r"[\s.!]+", "", body).upper()
    if word in OPT_OUT_WORDS:
        return "stop"
    if word in OPT_IN_WORDS:
        return "start"
    return None


@dataclass(frozen=True, slots=True)
class InboundSms:
    message_sid: str
    from_e164: str
    to_e164: str
    body: str
    media: list[tuple[str, str]] = field(default_factory=list)  # (url, content type)
    opt_out: Literal["stop", "start"] | None = None
    account_sid: str = ""
    messaging_service_sid: str | None = None

    def __repr__(self) -> str:  # no bodies or numbers in logs
        return (
            f"InboundSms(sid={self.message_sid!r}, from={mask_phone(self.from_e164)}, "
            f"body=<{len(self.body)} chars>, media={len(self.media)}, opt_out={self.opt_out!r})"
        )


def parse_inbound(form: Mapping[str, str]) -> InboundSms:
    """An inbound-message webhook form → InboundSms. Raises ValueError when it is not one.

    Media URLs need HTTP Basic auth (account SID / auth token) to download.
    """
    sid = (form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid") or "").strip()
    sender = (form.get("From") or "").strip()
    to = (form.get("To") or "").strip()
    if not sid or not sender or not to:
        raise ValueError("not a Twilio inbound message (MessageSid/From/To missing)")
    body = form.get("Body") or ""
    try:
        count = min(int(form.get("NumMedia") or "0"), MAX_MEDIA)
    except ValueError:
        count = 0
    media = [
        (form[f"MediaUrl{i}"], form.get(f"MediaContentType{i}") or "")
        for i in range(count)
        if form.get(f"MediaUrl{i}")
    ]
    opt: Literal["stop", "start"] | None
    opt_type = (form.get("OptOutType") or "").strip().upper()
    if opt_type in ("STOP", "STOPALL") or opt_type in OPT_OUT_WORDS:
        opt = "stop"
    elif opt_type in ("START", *OPT_IN_WORDS):
        opt = "start"
    else:
        opt = opt_out_keyword(body)
    return InboundSms(
        message_sid=sid,
        from_e164=sender,
        to_e164=to,
        body=body,
        media=media,
        opt_out=opt,
        account_sid=form.get("AccountSid") or "",
        messaging_service_sid=form.get("MessagingServiceSid") or None,
    )
