"""What `fedsage local` prints while a run goes on: the banner's words and the order of the lines."""

from client_code.models import FAMILIES
from orchestrator.cli.run import _local_banner
from orchestrator.text import indefinite


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
    banner = _local_banner(None, 5, "xgboost", prepared_dir, "synthetic-fraud")()
    assert f"3 clients x 5 rounds of an xgboost model on data in {prepared_dir}" in banner
    assert "all clients" not in banner
    banner = _local_banner(None, 1, "logistic", None, "breast-cancer")()
    assert "3 clients x 1 round of a logistic model on built-in data set 'breast-cancer'" in banner
