"""Run llama.cpp's ``convert_hf_to_gguf.py`` with one fallback: a SentencePiece-style (Llama) tokenizer
shipped as ``tokenizer.json`` alone, without ``tokenizer.model``.

llama.cpp's converter reads such a vocabulary itself (``_set_vocab_llama_hf``, for Llama models), but its
Phi-3 class insists on ``tokenizer.model``; the playground's demo model (Phi-3, a Llama-style BPE
tokenizer trained locally) is such a folder. ``python -m playground.models.gguf_convert CONVERTER_DIR
ARGS...`` runs the converter's own ``main`` with that fallback and nothing else changed.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _with_hf_vocab_fallback(original):  # type: ignore[no-untyped-def]
    def set_vocab(self) -> None:  # type: ignore[no-untyped-def]
        folder = Path(self.dir_model)
        if not (folder / "tokenizer.model").is_file() and (folder / "tokenizer.json").is_file():
            return self._set_vocab_llama_hf()
        return original(self)

    return set_vocab


def main(argv: list[str]) -> None:
    converter_dir, *args = argv
    sys.path.insert(0, converter_dir)
    import convert_hf_to_gguf  # the vendored converter (imports its conversion package and gguf-py)
    from conversion import phi

    phi.Phi3MiniModel.set_vocab = _with_hf_vocab_fallback(phi.Phi3MiniModel.set_vocab)
    sys.argv = [str(Path(converter_dir) / "convert_hf_to_gguf.py"), *args]
    convert_hf_to_gguf.main()


if __name__ == "__main__":
    main(sys.argv[1:])
