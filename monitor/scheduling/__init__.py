"""Running checks on time: the runner (one run, one deadline) and the scheduler."""
