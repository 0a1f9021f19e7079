"""The report's conclusions: what the numbers of a results file say, in sentences."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from micropeft.eval.results import ResultsFile
from micropeft.eval.summary import MethodSummary, baseline, join_items, kib, pareto_front, si

# ---------------------------------------------------------------------------
# Conclusions, computed from the numbers


# Relative first-step parameter difference under which C and TF count as computing the same
# step: float32 rounding of the same sums stays orders of magnitude below it.
FIRST_STEP_AGREEMENT = 1e-4


def _label(results: ResultsFile, method: str) -> str:
    return str(results.get("methods", {}).get(method, {}).get("label", method))


def conclusions(results: ResultsFile, summaries: Sequence[MethodSummary]) -> list[str]:
    out: list[str] = []
    measured = [s for s in summaries if s.acc_c.values]
    if not measured:
        return ["No method has finished a run yet."]
    points = [(s.device_ram, s.acc_c.mean) for s in measured]
    front = pareto_front(points)
    out.append(
        "On the Pareto front of accuracy against total device RAM: "
        + join_items(
            [
                f"{measured[i].label} ({100 * measured[i].acc_c.mean:.1f} % with "
                f"{kib(measured[i].device_ram)} KiB)"
                for i in front
            ]
        )
        + "; every other method is matched or beaten in accuracy by one that needs less RAM."
    )
    best = max(measured, key=lambda s: s.acc_c.mean)
    out.append(f"Highest accuracy: {best.label}, {best.acc_c.pct()} % over {best.acc_c.n} seed(s).")
    zero = baseline(results, "zero_shot")
    scratch = baseline(results, "scratch")
    floor = zero.mean if zero.values else 0.0
    per_kb = [
        (s, (s.acc_c.mean - floor) * 100 / (s.device_ram / 1024))
        for s in measured
        if math.isfinite(s.device_ram) and s.device_ram > 0
    ]
    if per_kb:
        s, value = max(per_kb, key=lambda t: t[1])
        out.append(
            f"Best accuracy gained per KiB of total device RAM (over the zero-shot "
            f"{100 * floor:.1f} %): {s.label}, {value:.2f} points per KiB."
        )
    if scratch.values:
        beat = [s.label for s in measured if s.acc_c.mean > scratch.mean]
        out.append(
            f"Training the same network from scratch on the target with the same epochs "
            f"reaches {scratch.pct()} %; "
            + (
                f"{len(beat)} of {len(measured)} fine-tuning methods beat it"
                + (f" ({join_items(beat)})" if beat else "")
                if beat
                else "no fine-tuning method beats it"
            )
            + "."
        )
    both = [s for s in measured if s.acc_tf.values]
    if both:
        gaps = [(s, s.gap) for s in both]
        worst = max(gaps, key=lambda t: abs(t[1]))
        mean_abs = float(np.mean([abs(g) for _, g in gaps]))
        out.append(
            f"The C runtime and the TensorFlow reference agree: the mean absolute accuracy "
            f"difference over methods is {100 * mean_abs:.1f} points, the largest "
            f"{100 * abs(worst[1]):.1f} points ({worst[0].label}, C "
            f"{'above' if worst[1] >= 0 else 'below'} TF)."
        )
    first_step = [
        (r["first_step_param_diff"], r)
        for r in results["runs"]
        if r.get("impl") == "c" and r.get("first_step_param_diff") is not None
    ]
    floors = {
        r["param_diff_floor"]
        for r in results["runs"]
        if r.get("impl") == "c" and r.get("param_diff_floor") is not None
    }
    if first_step:
        scale = "each array's largest value"
        if floors:
            scale += f", or {max(floors):g} if that is smaller"
        worst, worst_run = max(first_step, key=lambda t: t[0])
        apart = sorted((d, r) for d, r in first_step if d > FIRST_STEP_AGREEMENT)
        if not apart:
            out.append(
                f"After the first optimizer step, the C and TF parameters differ by at most "
                f"{worst:.1e} (relative to {scale}) over every method and seed: both compute "
                f"the same gradients and updates, so the accuracy differences come from the "
                f"trajectories drifting apart over many steps (float rounding), not from a "
                f"different computation."
            )
        else:
            names = ", ".join(
                f"{_label(results, r['method'])} seed {r['seed']} ({d:.1e})" for d, r in apart
            )
            out.append(
                f"After the first optimizer step, the C and TF parameters agree within "
                f"{FIRST_STEP_AGREEMENT:.0e} (relative to {scale}) in "
                f"{len(first_step) - len(apart)} of {len(first_step)} runs; they differ by "
                f"more in {names}, the largest {worst:.1e} "
                f"({_label(results, worst_run['method'])} seed {worst_run['seed']})."
            )
    probed = [
        r for r in results["runs"] if r.get("impl") == "c" and r.get("at_c_params") is not None
    ]
    if probed:
        checks = [c for r in probed for c in r["at_c_params"]]
        agreement = min(c["prediction_agreement"] for c in checks)
        grads = [c["grad_diff"] for c in checks if c.get("grad_diff") is not None]
        grad_text = f", and its gradient differs by at most {max(grads):.1e}" if grads else ""
        lockstep = [r["lockstep_steps"] / r["steps"] for r in probed if r.get("steps")]
        out.append(
            f"Set to the C run's own parameters after every epoch, the TF reference predicts "
            f"the C runtime's class for at least {100 * agreement:.1f} % of the test samples"
            f"{grad_text} (relative); the C and TF runs themselves stay within "
            f"{probed[0]['lockstep_bound']:g} of each other for a median "
            f"{100 * float(np.median(lockstep)):.0f} % of their steps: training amplifies "
            f"float rounding, so one seed's C and TF accuracies are two samples of the same "
            f"spread, not one number computed twice."
        )
    ratios = [(s, s.speed_ratio) for s in measured if math.isfinite(s.speed_ratio)]
    if ratios:
        geo = math.exp(float(np.mean([math.log(r) for _, r in ratios])))
        lo = min(ratios, key=lambda t: t[1])
        hi = max(ratios, key=lambda t: t[1])
        who = (
            f"the C runtime is {geo:.1f}x faster than TensorFlow"
            if geo >= 1
            else f"TensorFlow is {1 / geo:.1f}x faster than the C runtime"
        )
        out.append(
            f"On the host, per training step, {who} (geometric mean of the TF/C time ratio; "
            f"from {lo[1]:.2f} for {lo[0].label} to {hi[1]:.2f} for {hi[0].label})."
        )
    fits = [s for s in measured if s.m4 and s.m4.get("fits")]
    no_fit = [s.label for s in measured if s.m4 and not s.m4.get("fits")]
    if fits:
        cheapest = min(fits, key=lambda s: s.m4["step"])  # type: ignore[index]
        dearest = max(fits, key=lambda s: s.m4["step"])  # type: ignore[index]
        out.append(
            f"On the Cortex-M4F (QEMU instruction count), the cheapest training step is "
            f"{cheapest.label} ({si(cheapest.m4['step'])} instructions), the dearest "
            f"{dearest.label} ({si(dearest.m4['step'])})."
        )
    if no_fit:
        out.append(
            "Does not fit the nRF52840's 256 KiB RAM as a bare-metal firmware: "
            f"{join_items(no_fit)}."
        )
    elif fits:
        out.append(
            "Every measured method fits the nRF52840's 256 KiB RAM as a bare-metal firmware."
        )
    return out
