"""An OpenAI-compatible server as a lane: Ollama, LM Studio, Lemonade, Foundry Local, OpenVINO Model
Server, llama.cpp's server, vLLM, TGI, SGLang... anything that streams chat completions.

Each ``--endpoint`` the app or CLI was started with is a backend of its own (``variants``), named as
configured (``playground.engine.endpoints``); the page can pick one, never point it elsewhere.
Timing is the engine's as for local runtimes, taken here on the client: it includes the network
and the server's queue, which is what a user of that server gets. The server's usage counts are
recorded when it sends them (``stream_options.include_usage``; servers that refuse the option are
asked again without it).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

from playground.backends.base import (
    Backend,
    BackendError,
    BackendProbe,
    DeviceProbe,
    GenerationOutput,
    ProgressCallback,
    TokenCallback,
)
from playground.engine import endpoints
from playground.engine.endpoints import EndpointConfig
from playground.settings import GenerationSettings

DEVICE = "remote"
PROBE_TIMEOUT_S = 3.0
MESSAGE_CHARS = 160  # of a server's error text quoted in the lane's one-line message


class OpenAIEndpointBackend(Backend):
    name = "openai-endpoint"
    label = "OpenAI-compatible endpoint"
    precisions = ("served",)  # whatever the server runs; it does not say
    default_precision = "served"
    runs_remotely = True
    endpoint: ClassVar[EndpointConfig | None] = None

    @classmethod
    def variants(cls) -> list[type[Backend]]:
        """One backend per configured endpoint; none when the launch configured none."""
        if cls.endpoint is not None:
            return [cls]
        return [cls.for_endpoint(config) for config in endpoints.configured()]

    @classmethod
    def for_endpoint(cls, config: EndpointConfig) -> type[OpenAIEndpointBackend]:
        variant = type(f"Endpoint_{config.name}", (cls,), {
            "name": config.name, "label": config.title, "endpoint": config, "__module__": cls.__module__,
        })
        variant.__qualname__ = cls.__qualname__  # class_target: workers resolve it through variants()
        return variant

    @classmethod
    def config(cls) -> EndpointConfig:
        if cls.endpoint is None:
            raise BackendError("No endpoint configured: start with --endpoint name=URL[,model=...]")
        return cls.endpoint

    @classmethod
    def probe(cls) -> BackendProbe:
        result = cls.new_probe()
        config = cls.config()
        try:
            result.version = f"openai {version('openai')}"
        except PackageNotFoundError:
            result.reason = "the openai package is not installed: pip install -r requirements.txt"
            return result
        result.installed = True
        result.devices.append(DeviceProbe(DEVICE, True, f"{config.url} — {_reachability(config)}"))
        return result

    def load(self, model_dir: Path, device: str, precision: str, progress: ProgressCallback) -> None:
        import openai

        config = self.config()
        if device and device != DEVICE:
            raise BackendError(f"{self.label} runs on its server: its device is {DEVICE!r}, not {device!r}")
        self.precision = self.check_precision(precision)
        self.device = DEVICE
        self.model_dir = model_dir
        self.client = openai.OpenAI(base_url=config.url, api_key=config.api_key(), timeout=config.timeout_s,
                                    max_retries=0)  # a retry would hide the failure and skew the timing
        self.model = config.model or self._first_model(progress)
        self.usage_option = True  # dropped once if the server refuses stream_options
        self.device_note = f"{config.url} model {self.model}; client-side timing, network included"

    def _first_model(self, progress: ProgressCallback) -> str:
        progress("Asking the server which model it serves")
        try:
            models = [model.id for model in self.client.models.list()]
        except Exception as exc:
            raise BackendError(describe_failure(self.config(), exc, "listing its models")) from exc
        if not models:
            raise BackendError(f"{self.config().url} serves no model: name one with "
                               "--endpoint ...,model=NAME")
        return models[0]

    def generate(
        self, prompt: str, settings: GenerationSettings, on_tokens: TokenCallback
    ) -> GenerationOutput:
        config = self.config()
        # the engine's prompt carries its messages (models.chat.ChatPrompt); a bare text is one user turn
        messages = getattr(prompt, "messages", None) or [{"role": "user", "content": str(prompt)}]
        count = 0
        usage: Any = None
        finished = False
        stopped = False
        stream = self._open(messages, settings)
        try:
            for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                for choice in chunk.choices or ():
                    text = choice.delta.content if choice.delta else None
                    if text:
                        count += 1
                        if not on_tokens(text, 1, ()):
                            stopped = True
                            break
                    if choice.finish_reason:
                        finished = True
                if stopped:
                    break
        except Exception as exc:
            raise BackendError(describe_failure(config, exc, f"streaming, after {count} token(s)",
                                                mid_answer=True)) from exc
        finally:
            stream.close()
        if not (finished or stopped):
            raise BackendError(f"{config.title}: the stream ended after {count} token(s) without a finish "
                               "reason (the server stopped mid-answer)")
        completion = getattr(usage, "completion_tokens", None)
        if completion and completion > count and not stopped:  # a server that sends several per chunk
            on_tokens("", completion - count, ())
        return GenerationOutput(
            prompt_tokens=getattr(usage, "prompt_tokens", None) or 0,
            new_tokens=max(count, completion or 0),
            stopped=stopped,
            server_completion_tokens=completion,
        )

    def _open(self, messages: list[dict[str, str]], settings: GenerationSettings) -> Any:
        import openai

        request: dict[str, Any] = {
            "model": self.model, "messages": messages, "stream": True,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature if settings.do_sample else 0.0,
        }
        if settings.do_sample:
            request.update(top_p=settings.top_p, seed=settings.seed)
        try:
            if self.usage_option:
                try:
                    usage = {"include_usage": True}
                    return self.client.chat.completions.create(**request, stream_options=usage)
                except (openai.BadRequestError, openai.UnprocessableEntityError):
                    self.usage_option = False  # a server that does not know the option
            return self.client.chat.completions.create(**request)
        except Exception as exc:
            raise BackendError(describe_failure(self.config(), exc, "asking for a completion")) from exc


def describe_failure(config: EndpointConfig, exc: BaseException, doing: str, mid_answer: bool = False) -> str:
    """One line for the lane's panel: what went wrong with which server, and what to check."""
    import openai

    where = f"{config.title} ({config.url})"
    dropped = isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError)
    if mid_answer and dropped:
        cause = exc.__cause__ or exc
        return f"{where}: the server broke off the answer while {doing}: {_short(cause)}"
    if isinstance(exc, openai.APITimeoutError):
        return (f"{where}: no answer within {config.timeout_s:g} s while {doing} "
                "(the server is stuck or overloaded; --endpoint ...,timeout=S sets the limit)")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"{where}: cannot reach the server while {doing}: {_short(cause)} (is it running?)"
    if isinstance(exc, openai.APIStatusError):
        hint = " (check the API key's environment variable, key_env)" if exc.status_code in (401, 403) else ""
        return f"{where}: the server answered HTTP {exc.status_code} while {doing}: {_short(exc)}{hint}"
    return f"{where}: failed while {doing}: {_short(exc)}"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + "…"
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def _reachability(config: EndpointConfig) -> str:
    """Whether the server answers its model list now (a short look, at start-up)."""
    import openai

    client = openai.OpenAI(base_url=config.url, api_key=config.api_key(), timeout=PROBE_TIMEOUT_S,
                           max_retries=0)
    try:
        served = [model.id for model in client.models.list()]
    except openai.APIStatusError as exc:
        return f"answers, but its model list gave HTTP {exc.status_code}"
    except Exception as exc:
        return f"not answering now ({type(exc).__name__}); it is tried again when picked"
    finally:
        client.close()
    model = config.model or (served[0] if served else "none")
    return f"model {model}" + (f" (serves {len(served)})" if len(served) > 1 else "")
