"""The provider contract: value types, capabilities, the error family, the base class.

A provider turns `Outgoing` messages into vendor calls and maps every vendor answer to
either a `SendResult` or one of the errors below — once, inside the adapter, so the outbox
never has to know that a "200 OK" from a vendor can still mean "invalid recipient".

This package never imports ours (import-linter holds it): adapters depend on the stdlib,
aiohttp and Pillow only. Options are checked by `providers.options`, rates kept by
`providers.rates`; both are re-exported here.

One job, kept whole though it is over 400 lines: the contract every adapter, the outbox and
`core.delivery` share (what is sent, what comes back, what is reported, what can go wrong,
what a provider is) reads in one place.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import aiohttp

# Re-exported: adapters and the outbox import these from here. The one phone masker,
# options (`providers.options`) and rate limits (`providers.rates`).
from providers.masking import mask_in_text as mask_in_text
from providers.masking import mask_phone as mask_phone
from providers.options import Option as Option
from providers.options import ProviderConfigError as ProviderConfigError
from providers.options import is_secret_option as is_secret_option
from providers.options import masked_options as masked_options
from providers.options import validate_options as validate_options
from providers.rates import TokenBucket as TokenBucket
from providers.rates import parse_retry_after as parse_retry_after

# --------------------------------------------------------------------------- masking


def mask_key(value: str) -> str:
    """Kakao user keys are personal data too: keep four characters."""
    return value[:4] + "…" if len(value) > 4 else "****"


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a message is for. At least one address; `owner` marks the shop owner."""

    phone: str | None = None  # E.164
    kakao_user_key: str | None = None
    kakao_key_type: str | None = None  # botUserKey | plusfriendUserKey | appUserId
    name: str | None = None
    owner: bool = False
    # Kakao's one-time URL for the late answer to one skill request (AI-chatbot callback).
    kakao_callback_url: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Recipient:
        """Build from a stored JSON object; unknown keys are ignored (they are not ours)."""

        def text(key: str) -> str | None:
            value = data.get(key)
            return str(value) if value not in (None, "") else None

        return cls(
            phone=text("phone"),
            kakao_user_key=text("kakao_user_key"),
            kakao_key_type=text("kakao_key_type"),
            name=text("name"),
            owner=bool(data.get("owner", False)),
            kakao_callback_url=text("kakao_callback_url"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "phone": self.phone,
            "kakao_user_key": self.kakao_user_key,
            "kakao_key_type": self.kakao_key_type,
            "name": self.name,
            "owner": self.owner,
            "kakao_callback_url": self.kakao_callback_url,
        }

    def masked(self) -> str:
        """A log-safe description: 010-****-3333, kakao:abcd…, owner."""
        parts = []
        if self.owner:
            parts.append("owner")
        if self.phone:
            parts.append(mask_phone(self.phone))
        if self.kakao_user_key:
            parts.append(f"kakao:{mask_key(self.kakao_user_key)}")
        if self.kakao_callback_url:  # the token in it is a credential for a minute
            parts.append("kakao-callback")
        return " ".join(parts) or "(no address)"

    def __repr__(self) -> str:
        return f"Recipient({self.masked()})"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send. `ref` is our outbox id, the key for results and lookups."""

    ref: str
    recipient: Recipient
    text: str
    subject: str | None = None
    purpose: str = ""
    # Advertising messages are formatted and gated by the send-time policy before they get
    # here; the flag travels so an info-only channel (AlimTalk) can refuse an ad.
    informational: bool = True
    # One picture, in the two forms vendors take it: `image_path` is a local JPEG file
    # already within MMS limits (SOLAPI uploads its bytes), `image_url` an absolute http(s)
    # URL of the same picture (Twilio fetches it). Either may be missing: an adapter that
    # needs the missing one refuses the message rather than drop the picture silently.
    image_path: str | None = None
    image_url: str | None = None
    template: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def has_image(self) -> bool:
        return bool(self.image_path or self.image_url)

    def __repr__(self) -> str:  # bodies never reach a log through repr
        image = ", image" if self.has_image else ""
        return (
            f"Outgoing(ref={self.ref!r}, purpose={self.purpose!r}, "
            f"recipient={self.recipient!r}, text=<{len(self.text)} chars>{image})"
        )


@dataclass(frozen=True, slots=True)
class SendResult:
    """The provider took the message. `path` says how it travelled (console, sms, lms…)."""

    ref: str
    provider_message_id: str | None
    status: Literal["accepted", "delivered"]
    path: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SendRef:
    """What we know about an earlier send, to ask the provider what became of it.

    `recipient` and `text` are what the outbox row says was sent: a vendor without a search
    by our ref (Twilio) finds the message by them, in any process, not only the one that
    sent it.
    """

    ref: str
    provider_message_id: str | None = None
    attempted_at: datetime | None = None  # lets a vendor search narrow its time window
    recipient: Recipient | None = None
    text: str | None = None

    def __repr__(self) -> str:  # no numbers or bodies in logs
        return f"SendRef(ref={self.ref!r}, provider_message_id={self.provider_message_id!r})"


class Capability(enum.Flag):
    NONE = 0
    INITIATE = enum.auto()  # may speak first (not only answer)
    TEMPLATE_REQUIRED = enum.auto()  # only pre-approved templates (AlimTalk)
    INFO_ONLY = enum.auto()  # informational messages only, never ads
    IMAGES = enum.auto()
    BUTTONS = enum.auto()
    DELIVERY_REPORTS = enum.auto()  # reports final delivery later (webhook or lookup)
    DELIVERY_BY_LOOKUP = enum.auto()  # ...and only when asked: the outbox polls `lookup`


# --------------------------------------------------------------------------- delivery


class DeliveryStatus(enum.StrEnum):
    """How far a message we sent has got, in the one order every report is held to:

        queued, held (still with us)  <  accepted (the vendor took it)
        <  sent (handed on to the carrier or Kakao)  <  delivered = failed

    A status only moves forward and the first final one wins: a late "accepted" never
    replaces "delivered", and "delivered" never replaces "failed" (nor the other way).
    """

    QUEUED = "queued"
    HELD = "held"  # in the Kakao mailbox, for the customer to fetch
    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @property
    def final(self) -> bool:
        return self.rank == _RANKS[DeliveryStatus.DELIVERED]

    @property
    def of_message(self) -> DeliveryStatus:
        """What a message records: it has no "accepted" — taken by the vendor is "sent"."""
        return DeliveryStatus.SENT if self is DeliveryStatus.ACCEPTED else self


_RANKS: dict[str, int] = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.HELD: 0,
    DeliveryStatus.ACCEPTED: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.FAILED: 3,
}
# Statuses after which a message has left us / has an outcome: the outbox's guards.
LEFT_US = frozenset(s.value for s in DeliveryStatus if s.rank >= 1)
FINAL = frozenset(s.value for s in DeliveryStatus if s.final)


def status_advances(current: str | None, new: str) -> bool:
    """Should a report of `new` replace `current`? Only when it is strictly later in the
    order. A status outside the order (a cancelled message) comes before all of it."""
    if new not in _RANKS:
        return False
    was = -1 if current is None else _RANKS.get(current, 0)
    return _RANKS[new] > was


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What a vendor reported about one message we sent, in our words.

    Each adapter maps its vendor's reports (a SOLAPI webhook item, a Twilio status
    callback) into these; `core.delivery` applies them, whichever vendor sent them.
    """

    event_id: str  # unique per provider: a report delivered twice is applied once
    message_id: str  # the vendor's id of the message
    status: DeliveryStatus
    ref: str | None = None  # our outbox id, when the vendor echoes it back
    code: str | None = None  # the vendor's status or error code
    detail: str = ""  # the vendor's words, kept with the event
    reason: str = ""  # for people: why it failed (becomes the message's error)
    opted_out: bool = False  # failed because the number opted out: withdraws consent
    path: str | None = None  # how it travelled, when the vendor says (its own SMS fallback)
    to: str | None = None  # the recipient (E.164): finds the customer of a message not found
    reported_at: datetime | None = None

    def __repr__(self) -> str:  # no numbers in logs
        return (
            f"DeliveryReport(event_id={self.event_id!r}, message_id={self.message_id!r}, "
            f"status={self.status.value!r}, code={self.code!r}, opted_out={self.opted_out})"
        )


# --------------------------------------------------------------------------- errors


class ProviderError(Exception):
    """A send (or a webhook) failed. `reason` is for people, `code` is the vendor's."""

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def describe(self) -> str:
        """A log- and console-safe one-liner (phone numbers masked)."""
        text = f"{self.reason} [{self.code}]" if self.code else self.reason
        return mask_in_text(text)

    def __str__(self) -> str:
        return self.describe()


class TransientError(ProviderError):
    """Try again later: network trouble, 5xx, a timeout before the request left."""


class RateLimited(TransientError):
    def __init__(
        self, reason: str = "rate limited", *, retry_after: float, code: str | None = None
    ) -> None:
        super().__init__(reason, code=code)
        self.retry_after = max(0.0, retry_after)


class NotYet(RateLimited):
    """Not a failure: the message may only go later — an ad outside its lawful hours, a brand
    message outside Kakao's. The outbox waits `retry_after` and does not count a try."""


class UnknownOutcome(ProviderError):
    """The request may have been accepted: reconcile with `lookup`, never blind-resend."""


class CannotTell(ProviderError):
    """`lookup` cannot say whether an earlier send arrived (no vendor search by our ref)."""


class PermanentError(ProviderError):
    """Sending again will not help: bad number, template mismatch, opted out."""


class OptedOut(PermanentError):
    """The number opted out (SOLAPI 080 수신거부, Twilio STOP): never sent again, and the
    refusal withdraws the customer's marketing consent as a report of it would."""


class RejectedWebhook(ProviderError):
    """A webhook call that failed verification (signature, secret, token)."""

    def __init__(self, reason: str, *, code: str | None = None, http_status: int = 403) -> None:
        super().__init__(reason, code=code)
        self.http_status = http_status


Outcome = SendResult | ProviderError
# What a lookup said about one ref: found, None ("searched in full, not there"), or the
# error that stopped it (CannotTell: it never can; anything else: ask again later).
LookupAnswer = SendResult | ProviderError | None

# Lookups one `lookup_many` runs at once by default: a vendor is asked, not flooded.
LOOKUPS_AT_ONCE = 8


# --------------------------------------------------------------------------- the base class


class Provider(abc.ABC):
    """One vendor (or the console). Facts about it are class attributes."""

    name: ClassVar[str]
    capabilities: ClassVar[Capability]
    max_text_chars: ClassVar[int]
    rate_per_second: ClassVar[float | None] = None
    # Messages per send() call. The outbox gives each call its own time limit, and a call cut
    # off by it leaves all of its messages in doubt: an adapter that makes one vendor request
    # per message should say 1, so a cut-off call costs one message, never a whole batch.
    max_batch: ClassVar[int] = 100
    options_spec: ClassVar[Mapping[str, Option]] = {}
    # A picture the vendor takes as a file we upload (a JPEG), as Apprise keeps attachment
    # limits on the plugin: bytes and (width, height) at most. None: it takes no files (it
    # fetches a URL itself) or states no limit.
    image_max_bytes: ClassVar[int | None] = None
    image_max_size: ClassVar[tuple[int, int] | None] = None

    def __init__(
        self, options: Mapping[str, Any], session: aiohttp.ClientSession | None = None
    ) -> None:
        self.options = validate_options(self.name, self.options_spec, options)
        self.session = session
        self._own_session: aiohttp.ClientSession | None = None
        self.rate_limit = TokenBucket(self.rate_per_second) if self.rate_per_second else None

    async def start(self) -> None:
        """Acquire what the provider needs (tokens, connections). Default: nothing."""
        return

    async def close(self) -> None:
        """Release what `start` acquired. The shared HTTP session is not ours to close."""
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None

    def http(self) -> aiohttp.ClientSession:
        """The app's shared HTTP session; without one (tests, tools) one of our own, which
        `close` closes."""
        if self.session is not None:
            return self.session
        if self._own_session is None or self._own_session.closed:
            self._own_session = aiohttp.ClientSession()
        return self._own_session

    @property
    def send_rate(self) -> float | None:
        """Messages a second this provider sends at most (its rate limit); None: no limit.

        The outbox claims no more of this provider's rows than it sends in a short round, and
        allows each send() call the wait this rate imposes on top of its time limit.
        """
        return self.rate_limit.rate if self.rate_limit is not None else None

    async def ready_to_send(self, messages: int = 1) -> None:
        """Wait until the rate limit would let `messages` go at once (none are counted)."""
        if self.rate_limit is not None:
            await self.rate_limit.ready(messages)

    async def throttle(self, messages: int = 1) -> None:
        if self.rate_limit is not None:
            await self.rate_limit.acquire(messages)

    @abc.abstractmethod
    async def send(self, batch: Sequence[Outgoing]) -> Sequence[SendResult | ProviderError]:
        """Send `batch`; return one outcome per message, in order.

        A per-message failure is returned as the `ProviderError` for that message; a failure
        of the whole call (network, auth, timeout) may be raised instead.
        """

    async def lookup(self, ref: SendRef) -> SendResult | None:
        """What became of an earlier send whose answer was lost?

        The found result; None when the vendor was searched and does not have it (so it may
        be sent again); `CannotTell` when this provider cannot search for it (the default):
        then it is never sent again by itself, as that could be a second copy.
        """
        raise CannotTell(f"{self.name} cannot look up earlier sends")

    async def lookup_many(
        self, refs: Sequence[SendRef], *, seconds: float
    ) -> dict[str, LookupAnswer]:
        """`lookup` for many refs in one round of at most about `seconds`.

        The answer for each ref reached, by ref; a ref left out was not reached in time and
        is simply asked again next round. A failed lookup is its error, never None. This
        default runs `lookup` per ref, a few at once; an adapter whose search answers many
        refs at once (SOLAPI's list) overrides it, so N refs cost one search, not N.
        """
        answers: dict[str, LookupAnswer] = {}
        gate = asyncio.Semaphore(LOOKUPS_AT_ONCE)

        async def one(ref: SendRef) -> None:
            async with gate:
                try:
                    answers[ref.ref] = await self.lookup(ref)
                except ProviderError as exc:
                    answers[ref.ref] = exc
                except Exception as exc:  # an unmapped library error: the search failed
                    answers[ref.ref] = TransientError(
                        f"{self.name} lookup raised {type(exc).__name__}", code="lookup_error"
                    )

        tasks = [asyncio.create_task(one(ref)) for ref in refs]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=seconds)
            for task in late:  # not reached in time: asked again next round
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        return answers

    def _secret_keys(self) -> frozenset[str]:
        return frozenset(k for k, opt in self.options_spec.items() if opt.secret)

    def __repr__(self) -> str:
        shown = masked_options(self.options, self._secret_keys())
        return f"<{type(self).__name__} name={self.name!r} options={shown!r}>"

    __str__ = __repr__
