"""Build the embedded demo model: a tiny Phi-3 (``Phi3ForCausalLM``) trained from scratch.

Everything comes from the Python install itself, so the script runs offline:

* corpus: the reference-manual topics in ``pydoc_data.topics`` plus docstrings of a fixed
  list of stdlib modules, cut into paragraphs and framed as Phi-3 chat turns
  (``<|user|>\\nExplain X.<|end|>\\n<|assistant|>\\n<text><|end|>``);
* tokenizer: a Llama/Phi-3 style BPE ("▁" metaspace, byte fallback) trained with the
  ``tokenizers`` library on that corpus, with Phi-3's special tokens and chat template;
* model: hidden 256, 4 layers, 4 heads, vocab 4096, about 5.5M parameters, trained with
  AdamW for a fixed number of steps (by default as many as fit in ``--minutes``).

Usage::

    .venv/bin/python scripts/train_demo_model.py                # ~6 minutes on 2 cores
    .venv/bin/python scripts/train_demo_model.py --steps 400    # exact, time-independent rebuild

The output folder (default ``assets/demo-model``) is a Hugging Face model folder that
transformers, optimum-intel, openvino-genai and the onnxruntime-genai model builder load.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import random
import re
import shutil
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
from tokenizers.models import BPE

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "assets" / "demo-model"
SEED = 1234
SYSTEM_PROMPT = "You are a helpful AI assistant."  # the playground's default system prompt

# Phi-3-mini's chat template, verbatim.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

VOCAB_SIZE = 4096
BASE_TOKENS = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2 as in Llama / Phi-3
BYTE_TOKENS = [f"<0x{i:02X}>" for i in range(256)]  # ids 3..258: byte fallback
CHAT_TOKENS = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]  # last ids

MODEL_CONFIG = {
    "hidden_size": 256,
    "intermediate_size": 768,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 1024,
    "original_max_position_embeddings": 1024,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}

SEQ_LEN = 256
BATCH_SIZE = 16
PEAK_LR = 2e-3
WARMUP_STEPS = 30
HELD_OUT_EVERY = 20  # ~5%: examples whose content hash is 0 mod 20

# Stdlib modules whose docstrings join the corpus (fixed order; all importable headless).
STDLIB_MODULES = [
    "abc", "argparse", "array", "ast", "base64", "bisect", "calendar", "cmath", "codecs",
    "collections", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal",
    "difflib", "enum", "filecmp", "fnmatch", "fractions", "functools", "gc", "getopt",
    "glob", "gzip", "hashlib", "heapq", "hmac", "html", "imaplib", "inspect", "io",
    "ipaddress", "itertools", "json", "keyword", "linecache", "locale", "logging", "lzma",
    "math", "mimetypes", "operator", "os", "os.path", "pathlib", "pickle", "platform",
    "pprint", "queue", "quopri", "random", "re", "sched", "secrets", "selectors", "shelve",
    "shlex", "shutil", "signal", "smtplib", "socket", "sqlite3", "statistics", "string",
    "struct", "subprocess", "sys", "tarfile", "tempfile", "textwrap", "threading", "time",
    "timeit", "tokenize", "traceback", "types", "typing", "unicodedata", "unittest",
    "urllib.parse", "urllib.request", "uuid", "warnings", "wave", "weakref", "zipfile", "zlib",
]

TOPIC_QUESTIONS = ["What is {}?", "Explain {}.", "Tell me about {}.", "How does {} work?",
                   "Describe {}.", "Can you explain {}?"]
TERM_QUESTIONS = ["What does {} do?", "Explain {}.", "Tell me about {}.", "How does {} work?",
                  "What is {} used for?"]
MODULE_QUESTIONS = ["What is the {} module?", "Tell me about the {} module.",
                    "Explain the {} module.", "What does the {} module do?"]


@dataclass(frozen=True)
class Example:
    """One chat: a question, and a passage of the documentation as the answer."""

    question: str
    answer: str
    system: bool

    def render(self) -> str:
        """The text as Phi-3's chat template renders it (add_generation_prompt=False)."""
        head = f"<|system|>\n{SYSTEM_PROMPT}<|end|>\n" if self.system else ""
        return f"{head}<|user|>\n{self.question}<|end|>\n<|assistant|>\n{self.answer}<|end|>\n<|endoftext|>"


# --------------------------------------------------------------------------- corpus


def _is_prose(text: str) -> bool:
    """Mostly words: keeps explanations, drops grammar rules, code, tables."""
    if len(text) < 40 or "::=" in text or ">>>" in text or "+--" in text or "===" in text:
        return False
    words = text.split()
    alpha = sum(1 for w in words if w.strip(".,;:!?()\"'“”*").isalpha())
    return alpha / len(words) >= 0.7


def _reflow(block: str) -> str:
    """Join a paragraph's wrapped lines into one line."""
    return " ".join(line.strip() for line in block.splitlines())


def _chunks(paragraphs: list[str], limit: int = 500) -> list[str]:
    """Group consecutive paragraphs into answers of at most ``limit`` characters (or one)."""
    out: list[str] = []
    current: list[str] = []
    for para in paragraphs:
        if current and len("\n\n".join([*current, para])) > limit:
            out.append("\n\n".join(current))
            current = []
        current.append(para)
    if current:
        out.append("\n\n".join(current))
    return out


def _subject(heading: str) -> str:
    """'The "assert" statement' -> 'the "assert" statement' (for use mid-sentence)."""
    return heading[0].lower() + heading[1:] if heading.split()[0] in {"The", "A", "An"} else heading


def _topic_sections(text: str) -> list[tuple[str, str, list[str]]]:
    """(kind, subject, prose paragraphs) sections of one pydoc topic."""
    blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    sections: list[tuple[str, str, list[str]]] = []
    kind, subject, paragraphs = "topic", "", []
    for i, block in enumerate(blocks):
        lines = block.rstrip().splitlines()
        first = lines[0]
        indent = len(first) - len(first.lstrip())
        if len(lines) == 2 and re.fullmatch(r"[*=\-~^]{3,}", lines[1].strip()):
            if paragraphs:
                sections.append((kind, subject, paragraphs))
            kind, subject, paragraphs = "topic", first.strip(), []
            continue
        next_indent = -1
        if i + 1 < len(blocks):
            nxt = blocks[i + 1].splitlines()[0]
            next_indent = len(nxt) - len(nxt.lstrip())
        is_term = (len(lines) == 1 and indent < 3 and len(first) < 80 and next_indent >= 3
                   and not first.rstrip().endswith((".", ":")))
        if is_term:
            if paragraphs:
                sections.append((kind, subject, paragraphs))
            kind, subject, paragraphs = "term", first.strip(), []
            continue
        if indent > 3:
            continue  # code samples, grammar, nested tables
        prose = _reflow(block)
        if _is_prose(prose):
            paragraphs.append(prose)
    if paragraphs:
        sections.append((kind, subject, paragraphs))
    return [s for s in sections if s[1]]


def _docstring_paragraphs(doc: str | None) -> list[str]:
    """The prose paragraphs of a docstring (no indented examples or signatures)."""
    if not doc:
        return []
    out = []
    for block in re.split(r"\n\s*\n", doc):
        if not block.strip() or block.startswith((" ", "\t")):
            continue
        prose = _reflow(block)
        if _is_prose(prose):
            out.append(prose)
    return out


def build_corpus() -> list[Example]:
    """All chat examples, in a fixed order (independent of hash seeds and import order)."""
    from pydoc_data.topics import topics

    rng = random.Random(SEED)
    examples: list[Example] = []

    def add(questions: list[str], subject: str, paragraphs: list[str]) -> None:
        for chunk in _chunks(paragraphs):
            question = rng.choice(questions).format(subject)
            examples.append(Example(question, chunk, system=rng.random() < 0.5))

    for key in sorted(topics):
        for kind, subject, paragraphs in _topic_sections(topics[key]):
            if kind == "topic":
                add(TOPIC_QUESTIONS, _subject(subject), paragraphs)
            else:
                add(TERM_QUESTIONS, subject, paragraphs)

    for name in STDLIB_MODULES:
        module = importlib.import_module(name)
        add(MODULE_QUESTIONS, name, _docstring_paragraphs(inspect.getdoc(module)))
        for attr in sorted(vars(module)):
            obj = getattr(module, attr)
            if attr.startswith("_") or getattr(obj, "__module__", None) not in {name, module.__name__}:
                continue
            if not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj)):
                continue
            label = f"{name}.{attr}" + ("" if inspect.isclass(obj) else "()")
            add(TERM_QUESTIONS, label, _docstring_paragraphs(inspect.getdoc(obj))[:3])
    return examples


def split_corpus(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """Deterministic ~5% held-out split by a hash of the answer text."""
    train, held_out = [], []
    for ex in examples:
        (held_out if zlib.crc32(ex.answer.encode()) % HELD_OUT_EVERY == 0 else train).append(ex)
    return train, held_out


# --------------------------------------------------------------------------- tokenizer


SPECIAL_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in CHAT_TOKENS) + ")")
# Word classes for BPE training, as GPT-2's pre-tokenizer but with "▁" for the space and no
# contractions: letter or punctuation runs (each with an optional leading "▁"), single digits and
# single whitespace characters. Merges never cross these boundaries, so BPE over a whole text
# run (Phi-3's tokenizer.json has no pre-tokenizer) equals BPE word by word, which is what
# onnxruntime-genai's tokenizer does (it splits words GPT-2 style first).
TRAINING_WORDS = r"▁?\p{L}+|▁?[^\s\p{L}\p{N}▁]+|\p{N}|\s|▁"


def _training_runs(examples: list[Example]) -> list[str]:
    """The text runs between special tokens, as the tokenizer sees them."""
    return [run for ex in examples for run in SPECIAL_SPLIT.split(ex.render())
            if run and run not in CHAT_TOKENS]


def train_tokenizer(examples: list[Example]) -> Tokenizer:
    """A Phi-3 style tokenizer (Llama BPE: "▁" metaspace, byte fallback) fit on the corpus."""
    pieces = VOCAB_SIZE - len(BASE_TOKENS) - len(BYTE_TOKENS) - len(CHAT_TOKENS)
    normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer_tok = Tokenizer(BPE())
    trainer_tok.normalizer = normalizer
    trainer_tok.pre_tokenizer = pre_tokenizers.Split(Regex(TRAINING_WORDS), behavior="isolated")
    trainer = trainers.BpeTrainer(vocab_size=pieces, limit_alphabet=150, show_progress=False,
                                  special_tokens=[])
    trainer_tok.train_from_iterator(_training_runs(examples), trainer=trainer)

    trained = json.loads(trainer_tok.to_str())["model"]
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(BASE_TOKENS + BYTE_TOKENS)}
    for tok, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if tok not in vocab:
            vocab[tok] = len(vocab)
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    if len(vocab) + len(CHAT_TOKENS) != VOCAB_SIZE:
        raise RuntimeError(f"tokenizer vocab came out at {len(vocab)} + {len(CHAT_TOKENS)}")

    # The inference-time pipeline mirrors Phi-3-mini's tokenizer.json exactly.
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True,
                        fuse_unk=True))
    tok.normalizer = normalizer
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens(BASE_TOKENS + CHAT_TOKENS)
    return tok


def save_tokenizer(tok: Tokenizer, out: Path) -> None:
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json + chat_template.jinja."""
    tok.save(str(out / "tokenizer.json"))
    added = {}
    for token in BASE_TOKENS + CHAT_TOKENS:
        added[str(tok.token_to_id(token))] = {
            "content": token, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": True,
        }
    config = {
        "add_bos_token": False,  # Phi-3's template does not rely on BOS; no runtime adds one
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "bos_token": "<s>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "legacy": False,
        "model_max_length": MODEL_CONFIG["max_position_embeddings"],
        "pad_token": "<|endoftext|>",
        "padding_side": "left",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    special = {"bos_token": "<s>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
               "unk_token": "<unk>"}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)


# --------------------------------------------------------------------------- model


def make_model(tok: Tokenizer) -> torch.nn.Module:
    """A freshly initialised Phi3ForCausalLM with plain RoPE and the tokenizer's special ids."""
    from transformers import Phi3Config, Phi3ForCausalLM

    eos = [tok.token_to_id("<|end|>"), tok.token_to_id("<|endoftext|>")]
    config = Phi3Config(
        vocab_size=VOCAB_SIZE,
        bos_token_id=tok.token_to_id("<s>"),
        eos_token_id=eos,
        pad_token_id=tok.token_to_id("<|endoftext|>"),
        rope_scaling=None,
        **MODEL_CONFIG,
    )
    config.architectures = ["Phi3ForCausalLM"]
    torch.manual_seed(SEED)
    return Phi3ForCausalLM(config)


def encode_stream(tok: Tokenizer, examples: list[Example]) -> tuple[torch.Tensor, list[int]]:
    """All examples back to back as one token stream, and where each one starts."""
    ids: list[int] = []
    starts: list[int] = []
    for enc in tok.encode_batch([ex.render() for ex in examples], add_special_tokens=False):
        starts.append(len(ids))
        ids.extend(enc.ids)
    return torch.tensor(ids, dtype=torch.long), starts


def batch_at(stream: torch.Tensor, starts: list[int], picks: torch.Tensor) -> torch.Tensor:
    """Windows of SEQ_LEN + 1 tokens that begin at example boundaries (wrapping at the end)."""
    wrapped = torch.cat([stream, stream[: SEQ_LEN + 1]])
    return torch.stack([wrapped[starts[i] : starts[i] + SEQ_LEN + 1] for i in picks.tolist()])


@torch.no_grad()
def held_out_loss(model: torch.nn.Module, stream: torch.Tensor) -> float:
    """Mean next-token cross-entropy (nats/token) over non-overlapping windows."""
    model.eval()
    total, count = 0.0, 0
    for begin in range(0, len(stream) - 1, SEQ_LEN):
        chunk = stream[begin : begin + SEQ_LEN + 1].unsqueeze(0)
        if chunk.shape[1] < 2:
            break
        logits = model(input_ids=chunk[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits[0].float(), chunk[0, 1:], reduction="sum")
        total += float(loss)
        count += chunk.shape[1] - 1
    model.train()
    return total / count


def lr_at(step: int, total: int) -> float:
    """Linear warm-up then cosine decay to 10% of the peak."""
    if step < WARMUP_STEPS:
        return PEAK_LR * (step + 1) / WARMUP_STEPS
    progress = (step - WARMUP_STEPS) / max(1, total - WARMUP_STEPS)
    return PEAK_LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: torch.Tensor) -> float:
    """One AdamW step on a batch of windows (bf16 autocast forward, fp32 loss and weights)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=batch[:, :-1]).logits
    loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB_SIZE), batch[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def sample_reply(model: torch.nn.Module, tok: Tokenizer, question: str, max_new_tokens: int = 60) -> str:
    """Greedy reply to a chat prompt (for the log and TRAINING.md)."""
    prompt = f"<|system|>\n{SYSTEM_PROMPT}<|end|>\n<|user|>\n{question}<|end|>\n<|assistant|>\n"
    ids = torch.tensor([tok.encode(prompt, add_special_tokens=False).ids])
    stop = {tok.token_to_id("<|end|>"), tok.token_to_id("<|endoftext|>")}
    model.eval()
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                         do_sample=False,
                         eos_token_id=sorted(stop), pad_token_id=tok.token_to_id("<|endoftext|>"))
    model.train()
    return tok.decode(out[0, ids.shape[1] :].tolist(), skip_special_tokens=True)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (replaced)")
    parser.add_argument("--minutes", type=float, default=6.0,
                        help="training budget used to pick the step count (default 6)")
    parser.add_argument("--steps", type=int, default=None,
                        help="exact number of optimizer steps (overrides --minutes; reproducible)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True, warn_only=True)

    examples = build_corpus()
    train_examples, held_examples = split_corpus(examples)
    chars = sum(len(ex.answer) for ex in examples)
    print(f"corpus: {len(examples)} chats ({chars} answer characters); "
          f"{len(train_examples)} train / {len(held_examples)} held out", flush=True)

    tok = train_tokenizer(train_examples)
    train_stream, train_starts = encode_stream(tok, train_examples)
    held_stream, _ = encode_stream(tok, held_examples)
    print(f"tokens: {len(train_stream)} train / {len(held_stream)} held out", flush=True)

    model = make_model(tok)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: Phi3ForCausalLM, {n_params} parameters", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=PEAK_LR, betas=(0.9, 0.95))
    picker = torch.Generator().manual_seed(SEED)

    def next_batch() -> torch.Tensor:
        return batch_at(train_stream, train_starts, torch.randint(len(train_starts), (BATCH_SIZE,),
                                                                  generator=picker))

    # Without --steps, time steps 3..12 (warm-up LR, which does not depend on the total) and
    # fix the total then, so the run equals a ``--steps N`` run with the N it picked.
    total_steps: int | None = args.steps
    step = 0
    losses: list[float] = []
    train_started = time.monotonic()
    timer_start = train_started
    while total_steps is None or step < total_steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, total_steps or 10**9)
        losses.append(train_step(model, optimizer, next_batch()))
        step += 1
        if total_steps is None and step == 2:
            timer_start = time.monotonic()
        elif total_steps is None and step == 12:
            per_step = (time.monotonic() - timer_start) / 10
            left = args.minutes * 60 - (time.monotonic() - train_started)
            total_steps = max(50, (step + int(left / per_step)) // 10 * 10)
            print(f"~{per_step:.2f} s/step -> {total_steps} steps for {args.minutes:g} min", flush=True)
        if step % 25 == 0 or step == total_steps:
            recent = sum(losses[-25:]) / len(losses[-25:])
            print(f"step {step}/{total_steps}  loss {recent:.3f}  "
                  f"{time.monotonic() - train_started:.0f}s", flush=True)
    train_seconds = time.monotonic() - train_started

    loss = held_out_loss(model, held_stream)
    print(f"held-out loss {loss:.4f} nats/token, perplexity {math.exp(loss):.2f}", flush=True)
    samples = {q: sample_reply(model, tok, q) for q in
               ["What is the \"assert\" statement?", "Tell me about the json module.", "What is a list?"]}
    for q, a in samples.items():
        print(f"Q: {q}\nA: {a}\n", flush=True)

    # Write into a temporary sibling, then swap, so a failed run never leaves half a folder.
    out: Path = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".demo-model-", dir=out.parent))
    try:
        for key in ("resid_pdrop", "embd_pdrop", "attention_dropout"):
            setattr(model.config, key, 0.0)
        model.config.dtype = "float16"
        model.generation_config.eos_token_id = model.config.eos_token_id
        model.generation_config.pad_token_id = model.config.pad_token_id
        model.generation_config.bos_token_id = model.config.bos_token_id
        model.half().save_pretrained(tmp, safe_serialization=True)
        _finish_config(tmp / "config.json")
        save_tokenizer(tok, tmp)
        write_training_md(tmp, n_params, len(examples), len(train_stream), len(held_stream),
                          total_steps, train_seconds, loss, samples, time.monotonic() - started)
        tmp.chmod(0o755)  # mkdtemp makes it private
        for path in tmp.iterdir():
            path.chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    print(f"wrote {out} in {time.monotonic() - started:.0f}s", flush=True)
    return 0


def _finish_config(path: Path) -> None:
    """Spell out the keys older exporters read: plain RoPE, no scaling, 4k-style Phi-3."""
    config = json.loads(path.read_text())
    rope = config.pop("rope_parameters", None) or {}
    config["rope_theta"] = rope.get("rope_theta", MODEL_CONFIG["rope_theta"])
    config["rope_scaling"] = None
    config["partial_rotary_factor"] = rope.get("partial_rotary_factor", 1.0)
    config["original_max_position_embeddings"] = config["max_position_embeddings"]
    config["torch_dtype"] = "float16"
    path.write_text(json.dumps(dict(sorted(config.items())), indent=2) + "\n")


def write_training_md(out: Path, n_params: int, n_chats: int, train_tokens: int, held_tokens: int,
                      steps: int, seconds: float, loss: float, samples: dict[str, str],
                      total_seconds: float) -> None:
    """The model card: what was trained on what, how long, how well, and how to rebuild it."""
    cfg = MODEL_CONFIG
    rows = [
        ("parameters", f"{n_params:,} (hidden {cfg['hidden_size']}, intermediate "
                       f"{cfg['intermediate_size']}, {cfg['num_hidden_layers']} layers, "
                       f"{cfg['num_attention_heads']} heads, vocab {VOCAB_SIZE}, untied embeddings)"),
        ("context", f"{cfg['max_position_embeddings']} positions, plain RoPE (no scaling)"),
        ("weights", "float16 safetensors"),
        ("tokenizer", "Llama/Phi-3 style BPE (\"▁\" metaspace, byte fallback) trained on the corpus; "
                      "Phi-3 special tokens and chat template; no BOS added"),
        ("corpus", f"`pydoc_data.topics` (Python reference manual) + docstrings of "
                   f"{len(STDLIB_MODULES)} stdlib modules (Python {sys.version.split()[0]}): "
                   f"prose paragraphs framed as {n_chats} Phi-3 chats"),
        ("split", f"{train_tokens:,} training tokens; {held_tokens:,} held-out tokens "
                  f"(chats whose answer's CRC32 is 0 mod {HELD_OUT_EVERY}, ~5%)"),
        ("training", f"{steps} AdamW steps, batch {BATCH_SIZE} × {SEQ_LEN} tokens, peak LR {PEAK_LR}, "
                     f"bf16 autocast, seed {SEED}"),
        ("training time", f"{seconds:.0f} s on {torch.get_num_threads()} CPU threads "
                          f"({total_seconds:.0f} s for the whole script)"),
        ("held-out loss", f"{loss:.4f} nats/token (next-token cross-entropy)"),
        ("held-out perplexity", f"{math.exp(loss):.2f}"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    sample_lines = "\n".join(f"- **{q}** → {a.strip()!r}" for q, a in samples.items())
    text = f"""# Demo model

A tiny Phi-3 (`Phi3ForCausalLM`, transformers' built-in class) trained from scratch by
`scripts/train_demo_model.py`, so the playground and its tests run offline. It writes
English-looking sentences about Python; it knows nothing useful.

| | |
| --- | --- |
{table}

Greedy replies (system prompt "{SYSTEM_PROMPT}"):

{sample_lines}

## Rebuild

```
.venv/bin/python scripts/train_demo_model.py --steps {steps}
```

`--steps` pins the step count, so the run no longer depends on the machine's speed (identical
weights also need the same CPU kind, Python, torch and tokenizers); without it the script
times a few steps and trains as many as `--minutes` (default 6) allow. `--out DIR` writes
elsewhere.
"""
    (out / "TRAINING.md").write_text(text)


if __name__ == "__main__":
    sys.exit(main())
