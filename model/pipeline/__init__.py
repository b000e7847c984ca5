"""The tagbeez model pipeline: prepare -> train -> export -> quantize -> evaluate.

Run each step as `python -m pipeline.<step>` from `model/`, or all of them with `make model`.
"""
