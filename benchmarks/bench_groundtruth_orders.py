"""Every A1111 sampler's true order of accuracy, measured against the exact PF-ODE solution of a 2-D mixture.

    .venv/bin/python benchmarks/bench_groundtruth_orders.py [--n 128] [--steps 16,20,...,64] [--mmd-n 2000]

Table 1: fitted orders on Karras schedules (SD 1.x range) at 16-64 steps, stopping at sigma_min (no final jump
to 0), for the deterministic samplers and the stochastic ones at eta 0; DDIM, PLMS and UniPC as A1111 defines
them (their own timesteps). Order = minus the slope of log error vs log steps (and vs log NFE), with the 95 %
confidence interval and R^2. The error is the median over samples of |x_sampler - x_true|; the RMS order is
beside it: RMS is ruled by the few trajectories that start near a boundary between modes, where the flow
stretches every error (Euler puts one of 128 in the wrong mode up to ~96 steps), so it reaches its asymptotic
slope only at many more steps. Table 2: ancestral and SDE
samplers at eta 1: MMD to the true distribution at sigma_min vs the noise floor, and how far each seed's result
moves between N and N + 1 and between N and 2N steps. Takes about two minutes on one CPU core.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from sdlab import groundtruth as gt

NOTES = {
    "LMS": "AB4 in sigma; its order-1 warm-up step at sigma_max has O(h^2) local error: slope falls to ~2 past 64",
    "DPM++ 3M SDE": "eta 0 = DPM-Solver++(3M); first-order first step: slope falls toward 2 past 64 steps",
    "DPM fast": "orders 3,..,3 then 2,1 (n%3=0) / 1 (n%3=1) / 2 (n%3=2): the last step's order varies with n",
    "DPM adaptive": "ignores steps: its own error control picks the steps (rtol 0.05), same result at every count",
    "DDIM": "Euler in sigma on A1111's timesteps (1000 // steps spacing: more steps than asked); 1.0 at 64-256",
    "PLMS": "AB weights for equal steps in t used on unequal steps in sigma: order 2 at 64-256 steps, not 4",
    "UniPC": "time-uniform grid: last step sigma 0.12 -> 0.029 at order 1 (lower_order_final) rules; 1e-4 floor",
    "DPM++ SDE": "eta 0 = DPM-Solver++(2S), the same numbers as DPM++ 2S a at eta 0",
    "DPM++ 2M SDE": "eta 0, midpoint = DPM++ 2M exactly",
    "Euler a": "eta 0 = Euler exactly",
    "DPM2 a": "eta 0 = DPM2 exactly",
}


def orders_table(n: int, steps: tuple[int, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    dist = gt.toy_mixture()
    samplers = gt.A1111_DETERMINISTIC + gt.A1111_ETA0
    df = gt.error_vs_steps(samplers, ("karras",), steps, dist=dist, n=n, stop_at_sigma_min=True)
    rng = (min(steps), max(steps))
    med = gt.fit_order(df, metric="median_error", steps_range=rng)
    rms = gt.fit_order(df, metric="rms_error", steps_range=rng, x=("steps",)).set_index("sampler")
    by_steps = med[med.x == "steps"].set_index("sampler")
    by_nfe = med[med.x == "nfe"].set_index("sampler")
    table = pd.DataFrame(
        {
            "order": by_steps["order"],
            "95% CI": [f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(by_steps.ci_low, by_steps.ci_high, strict=True)],
            "R^2": by_steps["r2"],
            "pts": by_steps["n_points"],
            "order/NFE": by_nfe["order"],
            "RMS order": rms["order"],
            "RMS R^2": rms["r2"],
            "claimed": by_steps["claimed_order"],
        }
    )
    table["note"] = [NOTES.get(s, "") or by_steps.loc[s, "note"] for s in table.index]
    return table, df


def ancestral_table(n: int, steps: tuple[int, ...]) -> pd.DataFrame:
    dist = gt.toy_mixture()
    samplers = (*gt.A1111_STOCHASTIC, "DPM++ 2M")  # DPM++ 2M: a deterministic control
    df = gt.distribution_vs_steps(samplers, steps, dist=dist, n=n, eta=1.0)
    wide = df.pivot_table(index=["sampler", "steps"], columns="metric", values="value", sort=False)
    floor = df.iloc[0]
    wide.insert(1, "floor (mean +- std)", f"{floor.floor_mean:.4f} +- {floor.floor_std:.4f}")
    return wide.rename(columns={"path_change_plus_one": "|x(N)-x(N+1)|", "path_change_double": "|x(N)-x(2N)|"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128, help="noise samples per run")
    parser.add_argument("--steps", default="16,20,24,28,32,40,48,56,64")
    parser.add_argument("--mmd-n", type=int, default=2000, help="samples per MMD set")
    parser.add_argument("--mmd-steps", default="4,8,16,32,64")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors: more threads only add synchronisation
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 90)
    pd.set_option("display.float_format", lambda v: f"{v:.4g}")

    start = time.perf_counter()
    table, df = orders_table(args.n, tuple(int(s) for s in args.steps.split(",")))
    truth = df["truth_error"].max()
    print(f"True solution: DOP853 float64, rtol 1e-12 vs 1e-14; largest error estimate {truth:.1e} (any run)")
    print(f"Distribution: {gt.toy_mixture()!r}; {args.n} noise samples; Karras, SD 1.x sigma range, no final jump\n")
    print("Table 1: order of accuracy (median error over samples vs steps, unless stated)")
    print(table.to_string())
    print(f"\n[{time.perf_counter() - start:.0f} s]\n")

    start = time.perf_counter()
    anc = ancestral_table(args.mmd_n, tuple(int(s) for s in args.mmd_steps.split(",")))
    print(f"Table 2: stochastic samplers at eta 1, {args.mmd_n} samples, exact start, compared at sigma_min")
    print(anc.to_string())
    print(f"\n[{time.perf_counter() - start:.0f} s]")


if __name__ == "__main__":
    main()
