"""What `fedsage local` prints while a run goes on: the banner's words and the order of the lines."""

from rich.console import Console

from client_code.models import FAMILIES
from orchestrator.cli.banners import local_banner
from orchestrator.cli.progress import RunView
from orchestrator.federation.history import RoundRecord
from orchestrator.run.events import PrivacySpent, RoundFinished
from orchestrator.text import indefinite

BUDGET = {"mode": "central", "epsilon": 1.5, "delta": 1e-5, "rounds": 1, "clipping_norm": 1.0, "noise_multiplier": 1.1}


def test_every_model_family_gets_the_article_it_is_read_with():
    expected = {"logistic": "a", "sgd": "an", "mlp": "an", "linear": "a", "xgboost": "an"}
    assert set(FAMILIES) == set(expected)  # a new family: say here how it is read aloud
    assert {name: indefinite(name).split()[0] for name in FAMILIES} == expected
    assert (indefinite("estimator"), indefinite("uniform"), indefinite("binary")) == (
        "an estimator",
        "a uniform",
        "a binary",
    )


def test_the_banner_names_the_clients_of_the_data_folder_and_the_family_with_its_article(prepared_dir):
    banner = local_banner(None, 5, "xgboost", prepared_dir, "synthetic-fraud")()
    assert f"3 clients x 5 rounds of an xgboost model on data in {prepared_dir}" in banner
    assert "all clients" not in banner
    banner = local_banner(None, 1, "logistic", None, "breast-cancer")()
    assert "3 clients x 1 round of a logistic model on built-in data set 'breast-cancer'" in banner


def test_the_privacy_spent_in_a_round_prints_after_that_rounds_line():
    console = Console(record=True, width=200)
    view = RunView(console, "banner")
    with view:
        view(RoundFinished(RoundRecord(0, {"roc_auc": 0.5}), 2))
        for round_number in (1, 2):  # the strategy spends the budget when it aggregates, before the evaluation
            view(PrivacySpent(round_number, BUDGET | {"rounds": round_number}))
            view(RoundFinished(RoundRecord(round_number, {"roc_auc": 0.7}, seconds=0.1), 2))
        view(PrivacySpent(3, BUDGET | {"rounds": 3}))  # released, then the run stopped before its evaluation
    lines = [line.strip() for line in console.export_text().splitlines() if line.strip()]
    shown = [line.split("  ")[0] if line.startswith("round") else line.split(" (")[0] for line in lines]
    assert shown == [
        "banner",
        "round 0/2",
        "round 1/2",
        "privacy spent: central DP: epsilon 1.5 at delta 1e-05 after 1 round",
        "round 2/2",
        "privacy spent: central DP: epsilon 1.5 at delta 1e-05 after 2 rounds",
        "privacy spent: central DP: epsilon 1.5 at delta 1e-05 after 3 rounds",
    ]
