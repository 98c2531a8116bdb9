"""The notification path (Alertmanager's model): route -> group -> inhibit -> silence ->
outbox -> receivers. Each stage is a small type with one job."""
