"""Platform adapters: local / self-hosted links, Prolific, Mechanical Turk batches."""
