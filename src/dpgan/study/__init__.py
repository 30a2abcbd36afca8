"""`dpgan study`: the paper's ablation tables reproduced on a benchmark anyone can regenerate.

grid.py    which rows make which table (and which rows share a model)
runner.py  the runs: resumable, idempotent, spread over the available devices
report.py  mean +- std over seeds, Markdown tables laid out like the paper's, plots, summary
"""
