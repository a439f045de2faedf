"""Studies over many seeds: N seeds of a config trained together as one batched model (``seeds.py``), and the
tables and figures of a study (``report.py``). The command line is `gankit study CONFIG... --seeds N`."""
