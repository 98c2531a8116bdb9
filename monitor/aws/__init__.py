"""AWS access shared by the AWS check kinds and the SNS receiver: cached clients, assumed roles, bounded calls (docs/configuration.md, "AWS")."""
