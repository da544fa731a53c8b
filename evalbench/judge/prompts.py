"""`JudgePrompt`: the one judge-prompt type, for both prompt styles evalbench reads.

* `chatml` (alpaca_eval's annotator prompts): the whole conversation in one ChatML text
  (`<|im_start|>role ... <|im_end|>`) with placeholders written `{name}` (no whitespace inside),
  filled in one pass (`fill_template`) and split into chat messages the way alpaca_eval's
  `utils.prompt_to_chatml` does (`chatml_to_messages`).
* `fastchat` (FastChat llm_judge's `judge_prompts.jsonl`): a system prompt plus a user template
  filled with `str.format`, sent as [system, user] (FastChat's OpenAI path).

`render(fields)` gives the chat messages and the user prompt text for either style; `sha256`
names the prompt's version (template and system prompt).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from evalbench.errors import InputError
from evalbench.io import canonical_json, sha256_text
from evalbench.types import Message

__all__ = ["JudgePrompt", "fill_template", "chatml_to_messages", "placeholders"]

_IM_START, _IM_END = "<|im_start|>", "<|im_end|>"
# alpaca_eval's placeholder syntax (utils.make_prompts): `{name}` where name has no whitespace.
_PLACEHOLDER = re.compile(r"{([^ \s]+?)}")


@dataclass(frozen=True)
class JudgePrompt:
    """A judge prompt, where it came from, and how it is filled.

    Attributes:
        name: e.g. `weighted_alpaca_eval_gpt4_turbo`, `single-v1`, `custom:<file stem>`.
        template: the ChatML conversation (style `chatml`) or the user message (style `fastchat`).
        source: where the text was read from (a file or `package:path`), for provenance.
        style: `chatml` or `fastchat` (see the module docstring).
        system_prompt: the system message (`fastchat` only).
        type: `single` (rate one answer) or `pairwise` (compare two), as FastChat's field.
        output_format, description, category: FastChat's informational fields.
    """

    name: str
    template: str
    source: str = ""
    style: Literal["chatml", "fastchat"] = "chatml"
    system_prompt: str = ""
    type: Literal["single", "pairwise"] = "pairwise"
    output_format: str = ""
    description: str = ""
    category: str = ""

    @property
    def prompt_template(self) -> str:
        """FastChat's name for `template`."""
        return self.template

    @property
    def sha256(self) -> str:
        """The prompt's version: sha256 of the ChatML text, or of [system prompt, template]."""
        if self.style == "chatml":
            return sha256_text(self.template)
        return sha256_text(canonical_json([self.system_prompt, self.template]))

    def render(self, fields: Mapping[str, str]) -> tuple[tuple[Message, ...], str]:
        """The chat messages for `fields`, and the filled user prompt.

        Raises:
            InputError: a FastChat template uses a field that is not given; malformed ChatML.
        """
        if self.style == "chatml":
            messages = chatml_to_messages(fill_template(self.template, fields), source=self.source)
            user = next((m["content"] for m in messages if m["role"] == "user"), "")
            return messages, user
        try:
            user = self.template.format(**fields)
        except (KeyError, IndexError) as exc:
            raise InputError(f"judge prompt '{self.name}' uses a field that is not filled: {exc}",
                             path=self.source or None, field="prompt_template") from None
        return ({"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}), user


def placeholders(template: str) -> list[str]:
    """The `{name}` placeholders of a ChatML-style template, in order (repeats kept)."""
    return _PLACEHOLDER.findall(template)


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """Replace the first `{name}` of each key in `values` (alpaca_eval's make_prompts, batch size 1).

    One pass over the template: a placeholder-like string inside a filled value (an instruction that
    quotes "{output_2}") is left as is, where alpaca_eval's successive `str.replace` calls would
    substitute it. Other `{...}` in the template (the prompt's JSON braces) are kept.
    """
    done: set[str] = set()

    def sub(match: re.Match) -> str:
        key = match.group(1)
        if key in values and key not in done:
            done.add(key)
            return str(values[key])
        return match.group(0)

    return _PLACEHOLDER.sub(sub, template)


def chatml_to_messages(prompt: str, *, source: str | None = None) -> tuple[Message, ...]:
    """Split a ChatML prompt into chat messages, as alpaca_eval's `utils.prompt_to_chatml` does.

    The prompt (stripped) must start with `<|im_start|>` and end with `<|im_end|>`. Each block's
    first line is the role, the rest up to `<|im_end|>` (stripped) the content; a role written
    `system name=example_user` becomes role `system` with `name: example_user`.
    """
    text = prompt.strip()
    if not text.startswith(_IM_START) or not text.endswith(_IM_END):
        raise InputError(f"the judge prompt must start with {_IM_START} and end with {_IM_END} (ChatML, as "
                         "alpaca_eval's prompts)", path=source, field="judge_prompt")
    messages: list[Message] = []
    for block in text.split(_IM_START)[1:]:
        head, _, rest = block.partition("\n")
        role = head.strip()
        content = rest.split(_IM_END, 1)[0].strip()
        message: dict[str, str] = {"role": role, "content": content}
        if role.startswith("system") and role != "system":
            message["role"] = "system"
            for part in role[len("system"):].split(" "):
                if part:
                    key, _, value = part.partition("=")
                    message[key] = value
        if not message["role"]:
            raise InputError("a ChatML block has no role", path=source, field="judge_prompt")
        messages.append(message)
    return tuple(messages)
