"""Many seeds and hyperparameter sweeps as Ray Tune trials: `python -m paddle_ddpg.sweep`.

By job: `arguments` (what a sweep runs, checked), `tuning` (the trials on Ray Tune), `report` (tables, files,
plot), `__main__` (the program). Importing the package imports none of them, nor Ray or Paddle.

    python -m paddle_ddpg.sweep --preset fast --seeds 0 1 2 3 --grid lr_actor=5e-4,1e-3 tau=0.005,0.01
    python -m paddle_ddpg.sweep --preset fast --search optuna --trials 20 --space lr_actor=1e-5:1e-2:log \\
        batch_size=64,128,256 --scheduler asha
"""
