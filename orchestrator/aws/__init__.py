"""boto3 helpers: sessions (profiles, assumed roles with ExternalId), S3, CloudWatch Logs."""
