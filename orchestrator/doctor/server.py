"""Doctor's checks of the server account, with the server's own credentials.

The credentials are in the configured account; the VPC and its CIDR are as configured; the
advertised address lies in a subnet of that VPC (whose route table paths.py reads later); the
host's security group is in the VPC.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, ip_network
from typing import Any

from orchestrator.doctor.findings import Doctor, error_code
from orchestrator.doctor.network import route_tables_of


def check_server(doctor: Doctor) -> None:
    """Credentials, VPC, advertised address and security group of the server; fills doctor.server."""
    server = doctor.federation.server
    try:
        account = doctor.server_session.client("sts").get_caller_identity()["Account"]
    except Exception as exc:  # no credentials, expired SSO session, unreachable endpoint
        doctor.add(
            "server",
            "credentials",
            "fail",
            f"cannot call AWS ({error_code(exc)})",
            "set [server] profile (or AWS_PROFILE) to the server account and log in",
        )
        return
    if server.account_id and account != server.account_id:
        doctor.add(
            "server",
            "credentials",
            "fail",
            f"the credentials are in account {account}",
            f"use a profile of the server account {server.account_id} ([server] profile)",
        )
        return
    doctor.add("server", "credentials", "pass", f"account {account}")
    ec2 = doctor.server.ec2 = doctor.server_session.client("ec2")
    vpcs = _server_resource(doctor, "VPC", "vpc_id", "VpcId", ec2.describe_vpcs, "Vpcs", "VpcIds")
    if not vpcs:
        return
    view = doctor.server
    view.vpc_id, view.cidr = server.vpc_id, IPv4Network(vpcs[0]["CidrBlock"])
    if server.vpc_cidr and server.vpc_cidr != view.cidr:
        doctor.add(
            "server",
            "VPC",
            "fail",
            f"{server.vpc_id} is {view.cidr}, config says {server.vpc_cidr}",
            f'set [server] vpc_cidr = "{view.cidr}"',
        )
    else:
        doctor.add("server", "VPC", "pass", f"{server.vpc_id} ({view.cidr})")
    _server_host(doctor, ec2)


def _server_host(doctor: Doctor, ec2: Any) -> None:
    """The advertised address in a subnet of the server VPC (its route table kept), and the host's group."""
    server = doctor.federation.server
    view = doctor.server
    address = server.advertised_address
    subnets = _describe(ec2.describe_subnets, "Subnets", Filters=[{"Name": "vpc-id", "Values": [view.vpc_id]}])
    try:
        ip = IPv4Address(address or "")
    except ValueError:
        doctor.add(
            "server",
            "advertised address",
            "fail",
            f"{address!r} is not an IPv4 address",
            "set [server] advertised_address to the server host's private IP",
        )
        return
    home = next((s for s in subnets if s["VpcId"] == view.vpc_id and ip in ip_network(s["CidrBlock"])), None)
    if home is None:
        doctor.add(
            "server",
            "advertised address",
            "fail",
            f"{ip} is in no subnet of {view.vpc_id}",
            "set [server] advertised_address to the host's private IP in the server VPC",
        )
        return
    doctor.add("server", "advertised address", "pass", f"{ip} in {home['SubnetId']} ({home['CidrBlock']})")
    assert view.vpc_id
    view.route_table = route_tables_of(ec2, view.vpc_id, [home["SubnetId"]]).get(home["SubnetId"])
    groups = _server_resource(
        doctor,
        "security group",
        "security_group",
        "HostSecurityGroupId",
        ec2.describe_security_groups,
        "SecurityGroups",
        "GroupIds",
    )
    if not groups:
        return
    if groups[0]["VpcId"] != view.vpc_id:
        doctor.add(
            "server",
            "security group",
            "fail",
            f"{server.security_group} is not in {view.vpc_id}",
            "set [server] security_group to the output HostSecurityGroupId of the server stack",
        )
        return
    view.security_groups = groups
    doctor.add("server", "security group", "pass", f"{server.security_group} in {view.vpc_id}")


def _server_resource(
    doctor: Doctor, name: str, key: str, output: str, describe: Callable[..., Any], found: str, ids: str
) -> list[dict[str, Any]]:
    """The server resource whose id [server] `key` names, or [] after reporting why it is missing."""
    value = getattr(doctor.federation.server, key)
    fix = f"set [server] {key} to the output {output} of the server stack (fedsage infra deploy prints it)"
    if not value:
        doctor.add("server", name, "fail", f"[server] {key} is not set", fix)
        return []
    items = _describe(describe, found, **{ids: [value]})
    if not items:
        doctor.add("server", name, "fail", f"{value} not found in the server account", fix)
    return items


def _describe(call: Callable[..., dict[str, Any]], key: str, **kwargs: Any) -> list[dict[str, Any]]:
    """A Describe* call that returns [] for ids that do not exist."""
    try:
        return call(**kwargs)[key]
    except Exception as exc:
        if "NotFound" in error_code(exc) or "Malformed" in error_code(exc):
            return []
        raise
