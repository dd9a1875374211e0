"""The scoring core: a service's contract, features, model, explanations and rules, one path for every door."""
