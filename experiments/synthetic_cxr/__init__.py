"""A synthetic chest X-ray benchmark small enough for 2 CPU cores (issue 8).

``python -m experiments.synthetic_cxr.run --out DIR`` generates the data, trains the frozen
expert, runs VALOR's stages and their controls with the project's trainers, evaluates every
checkpoint with radeval and renders the tables with the project's leaderboard code.
"""
