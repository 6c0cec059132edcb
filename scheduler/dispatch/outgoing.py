"""Building the outgoing message: what a claimed row becomes for its provider, photo included.

A row whose payload has photo `attachments` (an owner's photo reply) gets its first photo
through the `PhotoResolver` the Dispatcher was given — so this package never touches files
or configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from core.outbox import PhotoResolver, PhotoUnavailable
from providers.base import (
    Capability,
    Outgoing,
    PermanentError,
    Provider,
    ProviderError,
    Recipient,
    TransientError,
)
from providers.registry import Providers
from scheduler.dispatch.claims import Claimed
from scheduler.dispatch.records import describe

log = logging.getLogger("dangol.outbox")


def _opt_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def first_photo(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first image among a payload's `attachments` (bot/photos/records.py `attachment()`)."""
    attachments = payload.get("attachments")
    for found in attachments if isinstance(attachments, list) else []:
        if isinstance(found, Mapping) and str(found.get("content_type", "")).startswith("image/"):
            return found
    return None


def with_link(text: str, url: str, max_chars: int) -> str:
    """`text` with the photo's URL on a line of its own, if it still fits the provider."""
    linked = f"{text}\n\n{url}"
    return linked if len(linked) <= max_chars else text


def not_configured(providers: Providers, name: str) -> PermanentError:
    """Why a row for provider `name` cannot go: this instance has no such provider."""
    known = ", ".join(providers.names()) or "none"
    return PermanentError(f"provider {name!r} is not configured (configured: {known})")


async def build_outgoing(
    item: Claimed, provider: Provider, photos: PhotoResolver | None = None
) -> Outgoing | ProviderError:
    """The provider-facing message for a row, or why it cannot be sent by `provider`
    (a TransientError when its photo could not be prepared this time).

    What becomes of a photo attachment is decided here and nowhere else: it is the
    message's picture when the provider carries images; else its absolute URL is appended
    to the text, for the customer to tap (Kakao), or left out when there is no public
    address. A template message (the AlimTalk reply notice) carries neither: its approved
    text is all that goes.
    """
    payload = item.payload
    text = payload.get("text")
    if not isinstance(text, str) or not text:
        return PermanentError("payload has no text")
    variables = payload.get("variables") or {}
    if not isinstance(variables, Mapping):
        return PermanentError("payload.variables must be an object")
    template = _opt_str(payload.get("template"))
    caps = provider.capabilities
    image_path = image_url = None
    photo = first_photo(payload) if template is None else None
    if photo is not None and photos is None:
        log.warning("outbox %d: no photo resolver configured; sending the text only", item.id)
    elif photo is not None and photos is not None:
        as_picture = Capability.IMAGES in caps
        try:
            found = await photos(photo, as_picture)
        except PhotoUnavailable as exc:
            # Dead, not sent as text alone: the owner attached the photo on purpose and the
            # text often refers to it ("견적서 사진 보내드려요"). Half a reply recorded as
            # "sent" would hide that; a failed reply with this reason shows in the console
            # and the owner can send the photo again. A retry cannot bring the file back.
            log.warning("outbox %d: photo unavailable: %s", item.id, exc)
            return PermanentError(
                "첨부한 사진 파일을 찾을 수 없어 보내지 못했어요. 사진을 다시 올려 보내 주세요.",
                code="photo_missing",
            )
        except OSError as exc:  # disk full, permissions: may be fixed before the next try
            log.warning("outbox %d: photo not prepared: %s", item.id, describe(exc))
            return TransientError(
                f"사진을 준비하지 못했어요 ({type(exc).__name__})", code="photo_not_ready"
            )
        if as_picture:
            image_path, image_url = found.path, found.url
        elif found.url:
            text = with_link(text, found.url, provider.max_text_chars)
    msg = Outgoing(
        ref=str(item.id),
        recipient=Recipient.from_mapping(item.recipient),
        text=text,
        subject=_opt_str(payload.get("subject")),
        purpose=item.purpose,
        informational=item.kind == "info",  # the row's kind, as the policy judged it
        image_path=image_path,
        image_url=image_url,
        template=template,
        variables={str(k): str(v) for k, v in variables.items()},
    )
    if len(text) > provider.max_text_chars:
        return PermanentError(
            f"text has {len(text)} characters; {provider.name} takes {provider.max_text_chars}"
        )
    if Capability.INFO_ONLY in caps and not msg.informational:
        return PermanentError(f"{provider.name} sends informational messages only")
    if Capability.TEMPLATE_REQUIRED in caps and not msg.template:
        return PermanentError(f"{provider.name} needs a template")
    return msg
