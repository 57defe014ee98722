"""What a command does, end to end: tune (with its search space and leaderboard), lr-find,
predict and export, each on top of the training path and the results."""
