"""The training loop, optimisation, checkpoints and run folders."""
