"""`fedsage infra render` and `fedsage infra deploy`: the command line over orchestrator/infra/."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.cli.common import config_option, console
from orchestrator.errors import BadInput

if TYPE_CHECKING:  # loaded when a command runs, so `fedsage --help` stays fast
    from orchestrator.infra.deploy import SessionFor
    from orchestrator.infra.plan import InfraOptions, StackStep

InfraConfigOption = Annotated[Path, config_option("naming the accounts, VPCs and buckets")]

infra_app = typer.Typer(
    name="infra",
    help="CloudFormation for the server and client accounts: render the commands, or deploy them.",
    no_args_is_help=True,
)

HostOption = Annotated[str, typer.Option(help="Server host: notebook (SageMaker notebook instance) or ec2.")]
EgressOption = Annotated[str, typer.Option(help="Server egress: nat, or endpoints (no internet; EC2 host).")]
EndpointsOption = Annotated[
    bool, typer.Option("--interface-endpoints", help="Interface endpoints (Logs, ECR, STS) in the client VPCs.")
]
ExistingOption = Annotated[
    bool, typer.Option("--existing-buckets", help="The client buckets exist; do not create them.")
]
OuOption = Annotated[
    str | None, typer.Option("--stackset-ou", help="Deploy the client stacks as a service-managed StackSet to this OU.")
]
OrgProfileOption = Annotated[
    str | None, typer.Option("--org-profile", help="Profile of the management (or delegated admin) account.")
]
OrgRegionOption = Annotated[
    str | None, typer.Option("--org-region", help="Region of the StackSet (default: server's).")
]
DelegatedOption = Annotated[
    bool, typer.Option("--delegated-admin", help="Call StackSets as the organization's delegated administrator.")
]


def _options(
    host: str,
    egress: str,
    endpoints: bool,
    existing: bool,
    ou: str | None,
    org_profile: str | None,
    org_region: str | None,
    delegated: bool,
) -> InfraOptions:
    """Validate the command-line choices into InfraOptions; BadInput names a wrong one."""
    from orchestrator.infra.plan import InfraOptions

    if host not in ("notebook", "ec2"):
        raise BadInput(f"--host {host!r}: use notebook or ec2")
    if egress not in ("nat", "endpoints"):
        raise BadInput(f"--egress {egress!r}: use nat or endpoints")
    if host == "notebook" and egress == "endpoints":
        raise BadInput("--egress endpoints needs --host ec2: a notebook host installs Python 3.11 from the internet")
    if ou is not None and not ou.startswith(("ou-", "r-")):
        raise BadInput(f"--stackset-ou {ou!r} is not an organizational unit id (ou-... or r-...)")
    return InfraOptions(host, egress, endpoints, existing, ou, org_profile, org_region, delegated)  # type: ignore[arg-type]


@infra_app.command(
    "render",
    epilog=(
        "Examples:\n\n"
        "  fedsage infra render -c federation.toml --out infra-out\n\n"
        "  fedsage infra render -c federation.toml --out infra-out --host ec2 --egress endpoints\n\n"
        "  fedsage infra render -c federation.toml --out infra-out --stackset-ou ou-ab12-cdef3456 --org-profile org"
    ),
)
def render_command(
    config_path: InfraConfigOption,
    out: Annotated[Path, typer.Option(help="New folder for the templates, parameter files and deploy.sh.")],
    host: HostOption = "notebook",
    egress: EgressOption = "nat",
    interface_endpoints: EndpointsOption = False,
    existing_buckets: ExistingOption = False,
    stackset_ou: OuOption = None,
    org_profile: OrgProfileOption = None,
    org_region: OrgRegionOption = None,
    delegated_admin: DelegatedOption = False,
) -> None:
    """Write every account's parameter files and the exact AWS CLI commands, in the order they must run."""
    options = _options(
        host, egress, interface_endpoints, existing_buckets, stackset_ou, org_profile, org_region, delegated_admin
    )
    from orchestrator import config
    from orchestrator.infra.render import render

    steps = render(config.load(config_path), options, out)
    for number, step in enumerate(steps, 1):
        where = step.account.account_id or "organization"
        console.print(f"{number}. {step.title}  [dim]({where}, {step.account.region}, {step.stack_name})[/]")
    console.print(f"wrote {out}/deploy.sh, {out}/README.md and the parameter files; run {out}/deploy.sh")


@infra_app.command(
    "deploy",
    epilog=(
        "Examples:\n\n"
        "  fedsage infra deploy -c federation.toml\n\n"
        "  fedsage infra deploy -c federation.toml --stackset-ou ou-ab12-cdef3456 --org-profile org"
    ),
)
def deploy_command(
    config_path: InfraConfigOption,
    host: HostOption = "notebook",
    egress: EgressOption = "nat",
    interface_endpoints: EndpointsOption = False,
    existing_buckets: ExistingOption = False,
    stackset_ou: OuOption = None,
    org_profile: OrgProfileOption = None,
    org_region: OrgRegionOption = None,
    delegated_admin: DelegatedOption = False,
) -> None:
    """Deploy every stack through change sets, in order, waiting for each; print the keys to copy into the config."""
    options = _options(
        host, egress, interface_endpoints, existing_buckets, stackset_ou, org_profile, org_region, delegated_admin
    )
    from orchestrator import config
    from orchestrator.infra.deploy import next_steps, profile_sessions
    from orchestrator.infra.plan import plan_stacks

    federation = config.load(config_path)
    steps = plan_stacks(federation, options)
    outputs = deploy_with_progress(steps, options, profile_sessions(federation))
    console.print("[bold]deployed.[/] Set these in federation.toml, then run fedsage doctor:")
    for line in next_steps(federation, outputs):
        console.print(f"  {line}", highlight=False, markup=False)


def deploy_with_progress(steps: list[StackStep], options: InfraOptions, session_for: SessionFor) -> Any:
    """Run the deployment with one Rich progress line per step; return the outputs by step key."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from orchestrator.infra.deploy import Deployer

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=False) as bar:
        tasks = {step.key: bar.add_task(f"[dim]{step.title}[/]", total=1) for step in steps}

        def show(step: StackStep, status: str) -> None:
            done = status == "done"
            label = f"[green]{step.title}: done[/]" if done else f"{step.title}: {status}"
            bar.update(tasks[step.key], description=label, completed=1 if done else 0)

        return Deployer(session_for, options, show).run(steps)
