"""Which of a shop's `notify_via` providers tells its owner of new customers — and the
warning, printed by init, check-config and serve, when none reaches anybody.
"""

from __future__ import annotations

from core.config import Settings, ShopConfig

# Providers that reach nobody: "console" writes a log line, "fake" is for tests.
NOT_A_CHANNEL = frozenset({"console", "fake"})


def unheard_owners(settings: Settings) -> list[str]:
    """One line per shop whose owner is told of new customers by no real channel."""
    return [
        f"shop {shop.slug}: owner notices go only to the log (notify_via = "
        f'{list(shop.owner.notify_via)}) — set [shops.owner] notify_via to "solapi" or '
        f'"twilio" so the owner hears of new customers'
        for shop in settings.shops
        if not set(shop.owner.notify_via) - NOT_A_CHANNEL
    ]


def owner_channel(shop: ShopConfig) -> str | None:
    """The provider that notifies the owner: the first real one in notify_via, else its
    first ("console" in the demo), else the shop's SMS provider."""
    via = shop.owner.notify_via
    return next((p for p in via if p not in NOT_A_CHANNEL), via[0] if via else shop.delivery.sms)
