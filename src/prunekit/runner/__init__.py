"""The pieces of a run that `prunekit.runner.experiment.Run` sequences: config checks and seeds (checks), the pruning
decision of a round (prune), the training loop of a round (train) and the lottery-ticket controls (controls)."""
