"""TOML configuration → frozen dataclasses.

Every error names the file, the key and what is wrong, so an installer can fix it without
reading a traceback; every mistake in the file is named in one run. Secrets are never
written in the file: the file names the environment variable that holds them.

    schema.py   the settings' types, each key's default and rules written once
    shop.py     one `[[shops]]` table; hours.py its opening hours and closures;
                services.py its service catalogue and the journey's timing;
                tiers.py the completed jobs each customer tier starts from
    values.py   the kinds of value (whole numbers, names, secrets from the environment)
    errors.py   ConfigError(s), and pydantic's findings turned into our one-line messages
    loading.py  load / parse: the file, through pydantic, into `Settings`
"""

from core.config.errors import ConfigError, ConfigErrors
from core.config.hours import WEEKDAYS, Closure, OpeningHours
from core.config.loading import iter_secret_env_names, load, parse
from core.config.schema import (
    PILLOW_MAX_PIXELS,
    ConsoleConfig,
    DatabaseConfig,
    LoggingConfig,
    OutboxConfig,
    ServerConfig,
    Settings,
    StorageConfig,
)
from core.config.services import AftercareTip, AlimTalkStep, JourneyConfig, ServiceConfig
from core.config.shop import (
    QUICK_REPLY_LABEL_MAX,
    SLUG_RE,
    AdvertisingConfig,
    Delivery,
    FaqEntry,
    KakaoConfig,
    OwnerConfig,
    ShopConfig,
    SolapiHookConfig,
)
from core.config.tiers import TIERS, TiersConfig
from core.config.values import Secret

__all__ = [
    "PILLOW_MAX_PIXELS",
    "QUICK_REPLY_LABEL_MAX",
    "SLUG_RE",
    "TIERS",
    "WEEKDAYS",
    "AdvertisingConfig",
    "AftercareTip",
    "AlimTalkStep",
    "Closure",
    "ConfigError",
    "ConfigErrors",
    "ConsoleConfig",
    "DatabaseConfig",
    "Delivery",
    "FaqEntry",
    "JourneyConfig",
    "KakaoConfig",
    "LoggingConfig",
    "OpeningHours",
    "OutboxConfig",
    "OwnerConfig",
    "Secret",
    "ServerConfig",
    "ServiceConfig",
    "Settings",
    "ShopConfig",
    "SolapiHookConfig",
    "StorageConfig",
    "TiersConfig",
    "iter_secret_env_names",
    "load",
    "parse",
]
