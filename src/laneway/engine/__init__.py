"""The Engine facade, its configuration, and in-process subscriptions."""

from ._config import (
    ENV_PREFIX as ENV_PREFIX,
)
from ._config import (
    EngineConfig as EngineConfig,
)
from ._config import (
    build_config as build_config,
)
from ._config import (
    load_config as load_config,
)
from ._config import (
    option_table as option_table,
)
from ._engine import Engine as Engine
from ._engine import EngineOverloaded as EngineOverloaded
from ._subscription import Subscription as Subscription

__all__ = [
    "ENV_PREFIX",
    "EngineConfig",
    "build_config",
    "load_config",
    "option_table",
    "Engine",
    "EngineOverloaded",
    "Subscription",
]
