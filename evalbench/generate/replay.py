"""ReplayBackend: serve saved outputs (alpaca_eval model_outputs.json, FastChat answers) by sample id.

`evalbench alpaca judge --outputs F` and `evalbench mtbench judge --answers F...` are ordinary
runs whose policy is a replay: the suite generates as usual, and each request, tagged by
`generate_items` with its (suite, sample_id, turn), is answered from the file. The suite reads its
own file format (`Suite.read_replay(path)` -> `{sample_id: [choice turns, ...]}`), so sample ids
are the suite's (eval-set index for AlpacaEval, question id for MT-bench). A request for turn t>1
gets the turn of the choice whose earlier turns are the request's assistant messages. A sample the
file lacks is a failed generation, counted in `n_failed` like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from evalbench.generate.backend import answer_in_order
from evalbench.io import sha256_file
from evalbench.types import Choice, Generation, GenRequest

# sample_id -> choices, each choice the texts of its turns in order.
Replay = Mapping[str, Sequence[Sequence[str]]]
Reader = Callable[[Path], Replay]


class ReplayBackend:
    """Answers from one saved-output file; `readers` maps a suite name to its file reader."""

    def __init__(self, name: str, path: str | Path, readers: Mapping[str, Reader]):
        self.name = name
        self.path = Path(path)
        self.readers = dict(readers)
        self._loaded: dict[str, Replay] = {}
        self._sha256: str | None = None

    @property
    def who(self) -> dict[str, Any]:
        if self._sha256 is None:
            self._sha256 = sha256_file(self.path)
        return {"engine": "replay", "model": self.name, "file_sha256": self._sha256}

    def outputs(self, suite: str) -> Replay:
        if suite not in self._loaded:
            reader = self.readers.get(suite)
            if reader is None:
                from evalbench.errors import InputError

                raise InputError(f"suite '{suite}' cannot replay saved outputs", path=self.path)
            self._loaded[suite] = reader(self.path)
        return self._loaded[suite]

    def generate_uncached(self, requests: Sequence[GenRequest], *,
                          on_result: Callable[[int, Generation], None] | None = None,
                          desc: str | None = None) -> list[Generation]:
        return answer_in_order(requests, self._answer, on_result)

    def _answer(self, req: GenRequest) -> Generation:
        if req.origin is None:
            return Generation(error="replay: the request carries no sample id (not made by generate_items)")
        suite, sample_id, turn = req.origin
        choices = self.outputs(suite).get(sample_id)
        if not choices:
            return Generation(error=f"replay: no saved output for sample {sample_id} in {self.path.name}")
        earlier = [m["content"] for m in req.messages or () if m.get("role") == "assistant"]
        fitting = [c for c in choices if len(c) >= turn and list(c[:turn - 1]) == earlier[-(turn - 1):]
                   ] if turn > 1 else [c for c in choices if c]
        if not fitting:
            return Generation(error=f"replay: no saved turn {turn} for sample {sample_id} in {self.path.name}")
        texts = [c[turn - 1] for c in fitting][:req.sampling.n]
        return Generation(choices=tuple(Choice(text=t, finish_reason="stop") for t in texts))
