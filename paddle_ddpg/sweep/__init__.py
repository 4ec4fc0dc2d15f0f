"""Many seeds and hyperparameter sweeps as Ray Tune trials, by job: `arguments`, `tuning`, `report`, `__main__`.
Importing the package imports none of them, nor Ray or Paddle. `python -m paddle_ddpg.sweep --help` tells how."""
