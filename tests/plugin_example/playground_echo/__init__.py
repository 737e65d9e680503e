"""An example backend plugin: streams the words of the user's message back, one per token.

Everything a plugin needs is ``playground.backends.base``: subclass ``Backend``, give it a
``name`` (the entry point's name), and implement ``probe``, ``load`` and ``generate``. Import the
runtime inside ``load`` / ``generate``: this module is also imported in the app process.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from playground.backends.base import (
    Backend,
    BackendProbe,
    DeviceProbe,
    DeviceUnavailableError,
    GenerationOutput,
    ProgressCallback,
    TokenCallback,
)
from playground.settings import GenerationSettings

MARKER = re.compile(r"<\|[^|]*\|>|<s>|</s>")  # chat-template markers are not words of the message


class EchoBackend(Backend):
    name = "echo"
    label = "echo (example plugin)"
    precisions = ("text",)
    default_precision = "text"

    @classmethod
    def probe(cls) -> BackendProbe:
        probe = cls.new_probe()
        probe.installed = True
        probe.version = "playground-echo 0.1.0"
        probe.devices = [DeviceProbe("CPU", True)]
        return probe

    def load(self, model_dir: Path, device: str, precision: str, progress: ProgressCallback) -> None:
        if device != "CPU":
            raise DeviceUnavailableError(f"{self.label} runs on CPU only, not {device!r}.")
        progress(f"echo needs no model weights ({model_dir.name} is not read)")
        self.device, self.precision = device, self.check_precision(precision)

    def generate(
        self, prompt: str, settings: GenerationSettings, on_tokens: TokenCallback
    ) -> GenerationOutput:
        words = MARKER.sub(" ", prompt).split()[: settings.max_new_tokens]
        produced = 0
        for index, word in enumerate(words):
            time.sleep(0.005)
            produced += 1
            if not on_tokens(f" {word}" if index else word, 1, [index]):
                break
        prompt_ids = list(prompt.encode())
        return GenerationOutput(len(prompt_ids), produced, produced < len(words), prompt_ids)
