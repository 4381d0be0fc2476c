"""AWS sessions: the server account's, each client account's, each data owner's.

The server uses its own profile (or the default credential chain); each client account is
reached through its kickoff role; each data owner uploads with their own profile.

Every client session comes from sts:AssumeRole on the client's kickoff role with the agreed
ExternalId and a RoleSessionName that carries the run id (so CloudTrail in the client account
shows which run did what). Its credentials refresh themselves before they expire, so a
federation that runs for hours can still poll and stop its jobs. Clients created here retry
throttling and transient errors (botocore's standard retry mode) and give up connecting after
CONNECT_TIMEOUT seconds. The server's session is checked once before a command uses it
(`require_credentials`): no credentials, refused ones and no network are each one line.

The refresh is botocore's own, through its public extension points: a `CredentialProvider`
registered as the session's `credential_provider` component hands out
`DeferredRefreshableCredentials` fed by an `AssumeRoleCredentialFetcher`, which renews them when
fewer than 15 minutes remain (botocore's advisory refresh window; mandatory at 10). The maintained
wrappers (boto3-assume, boto3-refresh-session) set the private `_credentials` attribute instead.
"""

from __future__ import annotations

import re

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, ProfileNotFound
from botocore.exceptions import ConnectionError as EndpointUnreachable

from orchestrator.config import ClientSettings, ServerSettings
from orchestrator.errors import BadInput

# botocore waits 60 s to connect by default; with 10 attempts an unreachable endpoint would hang a
# command for minutes. Connecting takes well under a second when the network works.
CONNECT_TIMEOUT, READ_TIMEOUT = 5, 60
RETRIES = Config(
    retries={"mode": "standard", "max_attempts": 10}, connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT
)
# The first call of a command: fail fast (two attempts) with a message that names the cause.
PREFLIGHT = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=CONNECT_TIMEOUT, read_timeout=15)
DEFAULT_CHAIN = (
    "the default credential chain (environment variables, AWS_PROFILE, ~/.aws, SSO, container or instance role)"
)
SESSION_SECONDS = 3600  # each AssumeRole credential's lifetime: STS's default, within every role's MaxSessionDuration


def _bounded() -> botocore.session.Session:
    """A botocore session whose clients default to RETRIES (a client's own config is merged over it)."""
    core = botocore.session.Session()
    core.set_default_client_config(RETRIES)
    return core


def session_name(run_id: str, purpose: str = "fedsage") -> str:
    """A RoleSessionName (at most 64 characters from STS's alphabet) carrying the run id."""
    return re.sub(r"[^\w+=,.@-]", "-", f"{purpose}-{run_id}")[:64]


def profile_session(profile: str | None, region: str | None, who: str) -> boto3.Session:
    """A session from a named profile (or the default credential chain when profile is None).

    Its clients default to RETRIES (bounded timeouts, standard retries); BadInput if the profile is unknown.
    """
    try:
        return boto3.Session(botocore_session=_bounded(), profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise BadInput(
            f"AWS profile {profile!r} for {who} not found; add it to ~/.aws/config or fix the name"
        ) from None


def server_session(server: ServerSettings) -> boto3.Session:
    """The server account's session (its profile, or the default credential chain), checked to work.

    Raises BadInput (exit 2) when no credentials are found, AWS refuses them, or AWS cannot be
    reached (see require_credentials).
    """
    session = profile_session(server.profile, server.region, "the server")
    require_credentials(session, server.profile, "the server", "[server] profile")
    return session


def require_credentials(session: boto3.Session, profile: str | None, who: str, setting: str) -> str:
    """Check that `session` has credentials AWS accepts, with one sts:GetCallerIdentity; return the account id.

    `who` names the party in messages, `setting` the config key that chooses its profile. Each
    failure is one BadInput line naming the profile (or the default chain) and the fix: no
    credentials, credentials refused or expired, or no network (bounded: PREFLIGHT's two attempts
    with a CONNECT_TIMEOUT-second connect timeout each).
    """
    source = f"profile {profile!r}" if profile else DEFAULT_CHAIN
    try:
        found = session.get_credentials()
        if found is None:
            raise BadInput(
                f"no AWS credentials for {who} in {source}; set {setting} or AWS_PROFILE, or log in "
                "(aws configure / aws sso login)"
            )
        return session.client("sts", config=PREFLIGHT).get_caller_identity()["Account"]
    except (EndpointUnreachable, HTTPClientError) as exc:
        raise BadInput(
            f"cannot reach AWS to check {who}'s credentials ({exc}); check the network, proxy or STS endpoint"
        ) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise BadInput(
            f"AWS refused the credentials of {who} from {source} ({code}); log in again or set {setting}"
        ) from None
    except BotoCoreError as exc:
        raise BadInput(f"cannot use the AWS credentials of {who} from {source} ({exc}); log in again") from None


class _AssumedRoleProvider(CredentialProvider):
    """The only credential source of an assumed-role session: refreshable AssumeRole credentials."""

    METHOD = "assume-role"
    CANONICAL_NAME = "custom-fedsage-assume-role"  # botocore asks custom providers for a "custom" prefix

    def __init__(self, fetcher: AssumeRoleCredentialFetcher) -> None:
        super().__init__()
        self._fetcher = fetcher

    def load(self) -> DeferredRefreshableCredentials:
        """Credentials that call AssumeRole on first use and again before they expire."""
        return DeferredRefreshableCredentials(refresh_using=self._fetcher.fetch_credentials, method=self.METHOD)


def assume_role(
    source: boto3.Session,
    role_arn: str,
    external_id: str,
    name: str,
    region: str,
    duration_seconds: int = SESSION_SECONDS,
) -> boto3.Session:
    """A session in `region` whose credentials come from (and are renewed by) sts:AssumeRole.

    `source` supplies the caller's credentials; AssumeRole is called on first use with
    `external_id` and RoleSessionName `name`, each credential lasting `duration_seconds` (STS
    allows 900 up to the role's MaxSessionDuration). The session has no other credential source,
    so it never falls back to the environment's credentials. Errors surface on first use, as
    botocore's ClientError (see check_assumable).
    """
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=lambda service, **kwargs: source.client(service, region_name=region, config=RETRIES, **kwargs),
        source_credentials=source.get_credentials(),
        role_arn=role_arn,
        extra_args={"ExternalId": external_id, "RoleSessionName": name, "DurationSeconds": duration_seconds},
    )
    core = _bounded()
    core.register_component("credential_provider", CredentialResolver([_AssumedRoleProvider(fetcher)]))
    return boto3.Session(botocore_session=core, region_name=region)


def client_session(source: boto3.Session, client: ClientSettings, run_id: str) -> boto3.Session:
    """The client account's session through its kickoff role, for this run."""
    assert client.kickoff_role_arn and client.external_id and client.region, "checked by require_launchable"
    return assume_role(source, client.kickoff_role_arn, client.external_id, session_name(run_id), client.region)


def check_assumable(session: boto3.Session, client: ClientSettings) -> str:
    """Assume the client's role now (not lazily); return the assumed ARN or raise BadInput naming the fix."""
    try:
        arn = session.client("sts", config=RETRIES).get_caller_identity()["Arn"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise BadInput(
            f"client {client.name!r}: cannot assume {client.kickoff_role_arn} ({code}); check the role exists, "
            "trusts the server account, and that external_id matches its trust policy"
        ) from None
    except BotoCoreError as exc:
        raise BadInput(f"client {client.name!r}: cannot reach AWS to assume its role ({exc})") from None
    account = arn.split(":")[4]
    if client.account_id and account != client.account_id:
        raise BadInput(
            f"client {client.name!r}: assumed role is in account {account}, not account_id {client.account_id}"
        )
    return arn


def data_owner_session(client: ClientSettings) -> boto3.Session:
    """The data owner's own session (its profile): used to upload data, never by the server."""
    return profile_session(client.profile, client.region, f"client {client.name!r}")
