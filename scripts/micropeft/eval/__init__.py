"""Stage 5, evaluating: the benchmark (tasks, store, train, run), its results schema
(results.py), the report (summary, conclusions, plots, render), the Cortex-M4F
instruction counts (cm4.py) and the kernel benchmark (kernel_bench.py)."""
