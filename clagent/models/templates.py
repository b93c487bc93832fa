"""The chat template a model gets when its GGUF has none (base models such as Gemma 3 270M).

A model is served, trained and gated through its chat template, so one without a template is given
one at import, written into its float master (``tokenizer.chat_template``) and recorded with the
version. The choice follows the special tokens its vocabulary has, so that a family's own turn
markers are used where they exist (and llama.cpp ends a turn at them):

- ``<start_of_turn>`` / ``<end_of_turn>``: Gemma's turns (a system message goes into the first user
  turn, as Gemma's own template does);
- ``<|im_start|>`` / ``<|im_end|>``: ChatML (Qwen, SmolLM);
- ``<|start_header_id|>`` / ``<|eot_id|>``: Llama 3's headers;
- ``<|user|>`` / ``<|assistant|>`` / ``<|end|>``: Phi-3's turns;
- otherwise plain text, "User: ..." / "Assistant: ...", each answer closed by the end-of-sequence
  token (the model learns to stop there when it is consolidated).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fallback:
    name: str
    tokens: tuple[str, ...]  # all must be in the vocabulary
    template: str


GEMMA = Fallback("gemma", ("<start_of_turn>", "<end_of_turn>"), (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = m['content'] + '\n\n' %}"
    "{% else %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{% if m['role'] == 'user' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}"
    "{{ m['content'] | trim }}<end_of_turn>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"))

CHATML = Fallback("chatml", ("<|im_start|>", "<|im_end|>"), (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"))

LLAMA3 = Fallback("llama3", ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"))

PHI3 = Fallback("phi3", ("<|user|>", "<|assistant|>", "<|end|>"), (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"))

PLAIN = Fallback("plain", (), (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% else %}Assistant: {{ m['content'] }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"))

FALLBACKS = (GEMMA, CHATML, LLAMA3, PHI3, PLAIN)


def fallback_for(vocabulary) -> Fallback:
    """The first fallback whose turn markers are all tokens of ``vocabulary`` (a set of strings)."""
    vocab = set(vocabulary)
    return next(f for f in FALLBACKS if all(t in vocab for t in f.tokens))


def fallback_for_gguf(reader) -> Fallback:
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    return fallback_for(tokens.contents() if tokens is not None else ())
