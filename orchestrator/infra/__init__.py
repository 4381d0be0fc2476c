"""fedsage infra: the CloudFormation stacks of a federation, in the order they must be deployed.

Three layers, each usable on its own (the command line is orchestrator/cli/infra.py):

- plan.py: federation.toml -> ordered `StackStep`s (pure, no AWS call); parameters.py derives
  each stack's parameter values from the config and checks the config against the templates;
- render.py: the steps as parameter files, a README and deploy.sh with the exact AWS CLI commands;
- deploy.py: the same steps through boto3 change sets (or StackSet operations), waiting for each.

The order: each client account's stack (infra/client-account.yaml: roles, bucket, VPC, job
security group); the server account's stack (infra/server-account.yaml: VPC, host, AssumeRole
policy); per client, a peering stack in the server account (infra/server-peering.yaml: the
peering request, auto-accepted through the client's accepter role, the route to the client's
CIDR and the Flower ingress rule from it); each client's stack again, with the peering
connection id: the route back to the server. With a StackSet, the client stacks become one
service-managed StackSet deployed to an organizational unit, with each client's own values
(ExternalId, CIDR, bucket) as per-account parameter overrides.
"""
