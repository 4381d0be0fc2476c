"""The CloudFormation templates pass cfn-lint and checkov; every checkov suppression says why, inline."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

INFRA = Path(__file__).resolve().parent.parent / "infra"
TEMPLATES = sorted(INFRA.glob("*.yaml"))
CHECKOV = Path(sys.prefix) / "checkov" / "bin" / "checkov"
# Regions the templates must deploy in: the commercial regions with SageMaker notebook instances.
REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-west-2", "eu-central-1", "ap-southeast-2"]


def test_there_are_the_three_templates():
    assert [t.name for t in TEMPLATES] == ["client-account.yaml", "server-account.yaml", "server-peering.yaml"]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
def test_cfn_lint_finds_nothing(template):
    from cfnlint.api import ManualArgs, lint

    matches = lint(template.read_text(), config=ManualArgs(regions=REGIONS))
    # errors and warnings, as the cfn-lint command reports them (informational I-rules are opt-in there)
    assert [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches if m.rule.id[0] in "EW"] == []


def _loader():
    """A YAML loader that reads CloudFormation's short-form tags as plain values."""

    class Loader(yaml.SafeLoader):
        pass

    def any_tag(loader, suffix, node):
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_mapping(node, deep=True)

    Loader.add_multi_constructor("!", any_tag)
    return Loader


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
def test_every_checkov_suppression_is_justified_inline(template):
    resources = yaml.load(template.read_text(), Loader=_loader())["Resources"]
    for name, resource in resources.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert skip["id"].startswith("CKV"), name
            assert len(skip.get("comment", "")) > 20, f"{name}: suppression {skip['id']} needs a reason"


@pytest.mark.skipif(
    not CHECKOV.exists(),
    reason=f"checkov is not installed at {CHECKOV} (it has its own virtual environment): "
    "python3 -m venv .venv/checkov && .venv/checkov/bin/pip install -r infra/requirements-checkov.txt",
)
def test_checkov_passes_every_template():
    result = subprocess.run(
        [str(CHECKOV), "--directory", str(INFRA), "--framework", "cloudformation", "--output", "json",
         "--skip-download", "--compact"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.stdout, result.stderr[-2000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})" for r in reports for c in r["results"]["failed_checks"]
    ]
    assert failed == []
    assert sum(r["summary"]["passed"] for r in reports) > 50  # the scan really read the templates
    assert sum(r["summary"]["parsing_errors"] for r in reports) == 0
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    assert skipped and all(c["check_result"].get("suppress_comment") for c in skipped)
    assert result.returncode == 0
