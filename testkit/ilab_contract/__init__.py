"""`make ilab-contract`: the bot's `ilab` command lines against the real releases' click
commands (see `__main__` for the run, `check` for what runs inside each release's venv)."""
