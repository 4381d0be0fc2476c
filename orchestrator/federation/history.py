"""What a run records per round: the server's test-set metrics and each client's metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.config.base import name_order


@dataclass
class RoundRecord:
    """One round. Round 0 is the initial (zero) model, evaluated before any training.

    `server` holds the test-set metrics of the global model after the round; `clients` maps a
    client name to what it reported that round (num_examples, train_loss, train_accuracy from
    fit; val_loss, val_accuracy, and local_<m> / federated_<m>, the scores of its local-only model
    and of the global model on its validation channel, from the federated evaluation).
    """

    round: int
    server: dict[str, float]
    clients: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class RunHistory:
    """All rounds of a run, in order."""

    rounds: list[RoundRecord] = field(default_factory=list)

    def final(self) -> RoundRecord:
        """The last round recorded."""
        return self.rounds[-1]

    def participants(self) -> dict[str, dict[str, int]]:
        """Every client that trained (in name order), with its example count and round the last time it did."""
        found: dict[str, dict[str, int]] = {}
        for record in self.rounds:
            for name, metrics in record.clients.items():
                if "num_examples" in metrics:
                    found[name] = {"num_examples": int(metrics["num_examples"]), "last_round": record.round}
        return {name: found[name] for name in sorted(found, key=name_order)}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"rounds": [asdict(r) for r in self.rounds]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunHistory:
        """The history `to_dict` wrote (metrics.json's "rounds"); undefined metrics (null) stay None."""
        return cls([RoundRecord(**record) for record in data.get("rounds") or []])

    def client_gains(self, task: str) -> dict[str, dict[str, dict[str, float]]]:
        """What each client gains, from the last round it reported both scores in.

        {client: {metric: {"local": x, "federated": y, "gain": g, "round": r}}} for every metric of
        client_code.metrics.GAIN_METRICS[task]; the gain is positive when the federated model is
        better on the client's own validation data (client_code.metrics.gain). Scores a client
        reports on its training rows ("split": "train") are left out: its local-only model was
        trained on them.
        """
        from client_code.metrics import GAIN_METRICS, gain

        found: dict[str, dict[str, dict[str, float]]] = {}
        for record in self.rounds:
            for name, metrics in record.clients.items():
                if metrics.get("split") == "train":
                    continue
                local = {m: metrics[f"local_{m}"] for m in GAIN_METRICS.get(task, {}) if f"local_{m}" in metrics}
                federated = {m: metrics[f"federated_{m}"] for m in local if f"federated_{m}" in metrics}
                if not federated:
                    continue
                gains = gain(local, federated, task)
                found[name] = {
                    m: {"local": local[m], "federated": federated[m], "gain": gains[m], "round": record.round}
                    for m in federated
                }
        return dict(sorted(found.items()))
