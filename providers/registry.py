"""Which provider classes exist (`Registry`) and which instances run (`Providers`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import aiohttp

from providers.base import Capability, Provider, ProviderConfigError
from providers.console import ConsoleProvider
from providers.kakao_callback import KakaoCallbackProvider
from providers.kakao_event import KakaoEventProvider
from providers.solapi import SolapiProvider
from providers.twilio import TwilioProvider

log = logging.getLogger("dangol.providers")

P = TypeVar("P", bound=type[Provider])


class Registry:
    """Provider classes by name. A name is taken once: a second class under it is refused."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Provider]] = {}

    def register(self, provider_cls: P) -> P:
        """Add a provider class (usable as a class decorator)."""
        name = getattr(provider_cls, "name", None)
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{provider_cls.__name__} needs a non-empty `name`")
        if not isinstance(getattr(provider_cls, "capabilities", None), Capability):
            raise ValueError(f"{provider_cls.__name__}.capabilities must be a Capability")
        if name in self._classes:
            other = self._classes[name]
            raise ValueError(
                f"provider name {name!r} is already taken by {other.__module__}.{other.__name__}"
            )
        self._classes[name] = provider_cls
        return provider_cls

    def get(self, name: str) -> type[Provider]:
        try:
            return self._classes[name]
        except KeyError:
            known = ", ".join(sorted(self._classes)) or "none"
            raise ProviderConfigError(
                f"providers.{name}: unknown provider (known: {known})"
            ) from None

    def create(
        self, name: str, options: Mapping[str, Any], session: aiohttp.ClientSession | None
    ) -> Provider:
        return self.get(name)(options, session)

    def problems(self, config: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Every mistake in these `[providers.<name>]` tables, one line each
        ("providers.solapi.api_key: is required but missing"); none when all would start."""
        found: list[str] = []
        for name, options in config.items():
            try:
                self.create(name, options, None)
            except ProviderConfigError as exc:
                found.extend(str(exc).splitlines())
        return found

    def names(self) -> tuple[str, ...]:
        return tuple(self._classes)

    def classes(self) -> tuple[type[Provider], ...]:
        return tuple(self._classes.values())

    def __contains__(self, name: object) -> bool:
        return name in self._classes


default_registry = Registry()
default_registry.register(ConsoleProvider)
default_registry.register(KakaoEventProvider)
default_registry.register(KakaoCallbackProvider)
default_registry.register(SolapiProvider)
default_registry.register(TwilioProvider)


class Providers:
    """The running provider instances, by name, with their lifecycle.

    `start_all` starts them in order; `close_all` closes the started ones in reverse order,
    so a failure halfway through start-up still tears down what came up.
    """

    def __init__(self, instances: Mapping[str, Provider] | None = None) -> None:
        self._instances: dict[str, Provider] = dict(instances or {})
        self._started: list[Provider] = []

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Mapping[str, Any]],
        session: aiohttp.ClientSession | None,
        registry: Registry = default_registry,
    ) -> Providers:
        """One instance per `[providers.<name>]` table (Settings.providers)."""
        return cls({name: registry.create(name, opts, session) for name, opts in config.items()})

    def add(self, provider: Provider, name: str | None = None) -> None:
        key = name or provider.name
        if key in self._instances:
            raise ValueError(f"provider {key!r} is already configured")
        self._instances[key] = provider

    def get(self, name: str) -> Provider | None:
        return self._instances.get(name)

    def __getitem__(self, name: str) -> Provider:
        return self._instances[name]

    def __contains__(self, name: object) -> bool:
        return name in self._instances

    def __iter__(self) -> Iterator[str]:
        return iter(self._instances)

    def __len__(self) -> int:
        return len(self._instances)

    def names(self) -> tuple[str, ...]:
        return tuple(self._instances)

    async def start_all(self) -> None:
        for provider in self._instances.values():
            if provider in self._started:
                continue
            try:
                await provider.start()
            except BaseException:
                await self.close_all()
                raise
            self._started.append(provider)

    async def close_all(self) -> None:
        while self._started:
            provider = self._started.pop()
            try:
                await provider.close()
            except Exception:
                log.exception("closing provider %s failed", provider.name)
