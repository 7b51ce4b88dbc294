"""The platform's training process: trains one job folder and writes its model artifacts.

See README.md for the contract with the server; `python3 -m trainer run --help` for options.
"""
