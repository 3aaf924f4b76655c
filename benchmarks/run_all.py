"""Every speed benchmark in turn (minutes). The accuracy table is separate and takes about
1.5 hours on a 2-core CPU: `python benchmarks/bench_accuracy.py`.
"""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    for script in ("bench_readers.py", "bench_generator.py", "bench_models.py", "bench_extrapolation.py"):
        print(f"\n## {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)
