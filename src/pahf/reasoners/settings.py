"""The LLM's settings in one place: which model, where, how long a call may take, how much it
may write, how hot it samples, how often a failed call is retried.

Every entry point (``pahf eval``, ``pahf chat``, the served graph, scripts) builds its chat
model from an :class:`LLMSettings`, read from arguments over environment variables over the
defaults, so a flag, a variable and a Python argument mean the same thing everywhere.

The defaults suit a slow local server (a 1.5B model on two CPU cores writes 3-13 tokens a second)
as well as a hosted API: a call may take two minutes, and a reply is cut at 256 tokens, several
times what any decision needs (valid replies measured 30-90 tokens), so a model that loops
is stopped by the token cap in seconds instead of running into the timeout.

Models are named as LangChain names them: a plain name (``gpt-4o-mini``,
``qwen2.5-coder-1.5b-instruct``) is an OpenAI-protocol model served by ``ChatOpenAI`` (OpenAI,
vLLM, llama.cpp, Ollama's ``/v1``); ``provider:model`` (``anthropic:claude-3-5-haiku-latest``,
``ollama:qwen2.5``) goes through ``langchain.chat_models.init_chat_model``, so any provider
package works without code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from pahf.errors import InputError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_TOKENS = 256
DEFAULT_TEMPERATURE = 0.0
DEFAULT_RETRIES = 2

#: Environment variable of each setting (the CLI flags set the same fields).
ENV = {
    "model": "PAHF_MODEL",
    "base_url": "PAHF_LLM_BASE_URL",
    "timeout": "PAHF_LLM_TIMEOUT",
    "max_tokens": "PAHF_LLM_MAX_TOKENS",
    "temperature": "PAHF_LLM_TEMPERATURE",
    "retries": "PAHF_LLM_RETRIES",
    "method": "PAHF_STRUCTURED_OUTPUT",
    "cache_path": "PAHF_LLM_CACHE",
}

#: Providers served by ChatOpenAI here (plain names and ``openai:``), reading OPENAI_* variables.
OPENAI_PROVIDERS = ("", "openai")


class LLMConfigError(InputError):
    """The LLM cannot be configured (no API key, a bad setting, a provider not installed)."""


class LLMSettings(BaseModel):
    """How to reach and call the model. Build with :meth:`resolve` to read the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: SecretStr | None = Field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    retries: int = DEFAULT_RETRIES
    method: str | None = None
    cache_path: str | None = None

    @classmethod
    def resolve(
        cls, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> LLMSettings:
        """Arguments (those not None) over environment variables over the defaults.

        A value that does not parse (``PAHF_LLM_TIMEOUT=soon``) or is out of range is an
        :class:`LLMConfigError` naming the variable or argument.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, var in ENV.items():
            raw = env.get(var)
            if raw is not None and raw.strip() != "":
                values[name] = _parse(name, raw.strip(), var)
        if "base_url" not in values and env.get("OPENAI_BASE_URL"):
            values["base_url"] = env["OPENAI_BASE_URL"]
        for name, value in overrides.items():
            if name not in cls.model_fields:
                raise TypeError(f"unknown LLM setting {name!r}")
            if value is not None:
                values[name] = _parse(name, value, f"argument {name}")
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if not self.model.strip():
            raise LLMConfigError("the LLM model name is empty")
        if self.timeout <= 0:
            raise LLMConfigError(f"LLM timeout must be positive, got {self.timeout}")
        if self.max_tokens < 1:
            raise LLMConfigError(f"LLM max_tokens must be at least 1, got {self.max_tokens}")
        if not 0 <= self.temperature <= 2:
            raise LLMConfigError(f"LLM temperature must be in [0, 2], got {self.temperature}")
        if self.retries < 0:
            raise LLMConfigError(f"LLM retries must be >= 0, got {self.retries}")

    @property
    def provider(self) -> str:
        """The LangChain provider named before the first ``:``, else ``""`` (an OpenAI-protocol
        name; Ollama tags such as ``qwen2.5:1.5b`` name no provider)."""
        head, sep, _ = self.model.partition(":")
        head = head.strip().lower()
        return head if sep and head in known_providers() else ""

    @property
    def model_name(self) -> str:
        return self.model.partition(":")[2] if self.provider else self.model

    def environ(self) -> dict[str, str]:
        """These settings as the environment variables :meth:`resolve` reads (no API key), so a
        worker process started with them builds the same model."""
        out: dict[str, str] = {}
        for name, var in ENV.items():
            value = getattr(self, name)
            if value is not None:
                out[var] = str(value)
        return out

    def chat_model(self) -> BaseChatModel:
        """The chat model these settings name. Client-side retries are off: the reasoner
        retries itself, so every attempt is a call the usage counts see."""
        kwargs: dict[str, Any] = {
            "temperature": self.temperature,
            "timeout": self.timeout,
            "max_tokens": self.max_tokens,
            "max_retries": 0,
            # Structured decisions are parsed whole; a streamed call (stream_mode="messages")
            # takes another code path in the provider and gains nothing here.
            "disable_streaming": True,
        }
        if self.cache_path:
            from pahf.reasoners.cache import SQLiteResponseCache

            kwargs["cache"] = SQLiteResponseCache(Path(self.cache_path))
        if self.provider in OPENAI_PROVIDERS:
            return self._chat_openai(kwargs)
        try:
            from langchain.chat_models import init_chat_model
        except ImportError as exc:
            raise LLMConfigError(
                f"model {self.model!r} names the provider {self.provider!r}, which needs "
                f"LangChain's init_chat_model: pip install 'pahf[providers]' (or langchain) and "
                f"the provider's package (e.g. langchain-{self.provider})"
            ) from exc
        if self.base_url:
            kwargs["base_url"] = self.base_url
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key.get_secret_value()
        try:
            model = init_chat_model(self.model_name, model_provider=self.provider, **kwargs)
        except (ImportError, ValueError, TypeError) as exc:
            raise LLMConfigError(f"cannot build the chat model {self.model!r}: {exc}") from exc
        from langchain_core.language_models import BaseChatModel

        if not isinstance(model, BaseChatModel):  # pragma: no cover - only with configurable
            raise LLMConfigError(f"{self.model!r} did not give a chat model")
        return model

    def _chat_openai(self, kwargs: dict[str, Any]) -> BaseChatModel:
        # ChatOpenAI whose structured calls skip the OpenAI SDK's request transform, a no-op on
        # these requests and the largest CPU cost of a call (pahf.reasoners.direct_openai). It
        # leans on two private helpers of the SDK and langchain-openai: a release that moves
        # them gets plain ChatOpenAI, slower and otherwise the same.
        from langchain_openai import ChatOpenAI

        chat_class: type[ChatOpenAI]
        try:
            from pahf.reasoners.direct_openai import DirectChatOpenAI
        except ImportError:
            chat_class = ChatOpenAI
        else:
            chat_class = DirectChatOpenAI

        api_key = (
            self.api_key.get_secret_value() if self.api_key is not None else None
        ) or os.environ.get("OPENAI_API_KEY") or None
        if api_key is None:
            if self.base_url is None:
                raise LLMConfigError(
                    "no API key for the LLM: set OPENAI_API_KEY, or PAHF_LLM_BASE_URL / "
                    "OPENAI_BASE_URL (--llm-base-url) for a local OpenAI-compatible server "
                    "that needs none"
                )
            api_key = "not-needed"  # local servers ignore it, but the client insists on one
        kwargs = {**kwargs, "model": self.model_name, "api_key": SecretStr(api_key)}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        return chat_class(**kwargs)


#: init_chat_model's providers (its documented list), for telling ``provider:model`` from a
#: model name that merely holds a colon.
PROVIDERS = (
    "anthropic", "azure_ai", "azure_openai", "bedrock", "bedrock_converse", "cohere", "deepseek",
    "fireworks", "google_anthropic_vertex", "google_genai", "google_vertexai", "groq",
    "huggingface", "ibm", "mistralai", "nvidia", "ollama", "openai", "perplexity", "together",
    "upstage", "xai",
)


def known_providers() -> frozenset[str]:
    """:data:`PROVIDERS`, plus any the installed LangChain knows beyond them."""
    try:
        from langchain.chat_models import base

        extra = getattr(base, "_BUILTIN_PROVIDERS", ())
    except ImportError:
        extra = ()
    return frozenset(PROVIDERS) | frozenset(str(p) for p in extra)


def _parse(name: str, value: Any, where: str) -> Any:
    """One setting's value, converted to its type, with an error that says where it came from."""
    try:
        if name in ("timeout", "temperature"):
            return float(value)
        if name in ("max_tokens", "retries"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if name == "api_key":
            return SecretStr(value) if isinstance(value, str) else value
        if name == "cache_path":
            return str(value)
        return value
    except (TypeError, ValueError):
        raise LLMConfigError(f"{where}: {value!r} is not a valid {name}") from None
