"""Benchmarks run by `siyu bench <scenario>`: each module has `main(argv) -> dict` and measures the
real thing end to end (real processes, a real database), with a baseline measured in the same run
so that the figures can be judged on the machine they come from."""
