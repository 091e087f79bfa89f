"""Figures of the anode experiments, from the CSV files each experiment writes.

Usage: plot <experiment> <results folder> [--quiet]

One function per experiment; each reads the CSVs in the folder and writes PNG
files next to them, in the plain line-plot style of the report's figures
(Julia's Plots.jl defaults: white background, thin grid, boxed legend).
"""

import csv
import glob
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": True,
    "legend.framealpha": 0.9,
    "font.size": 10,
})

PALETTE = ["#e26f46", "#009af9", "#3da44d", "#c271d2", "#ac8d18", "#00a9ad", "#ed5d92", "#c68125",
           "#00a98d", "#8e971d", "#6b6b6b", "#1f77b4", "#d62728"]


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = {}
    for r in rows:
        for k, v in r.items():
            try:
                cols.setdefault(k, []).append(float(v))
            except ValueError:
                cols.setdefault(k, []).append(v)
    return cols


def save(fig, folder, name, written):
    path = os.path.join(folder, name)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, bbox_inches="tight")
    os.replace(tmp, path)
    plt.close(fig)
    written.append(name)


def matching(folder, prefix):
    """Files <prefix><digits>.csv (so "pred_sin_p" does not match "pred_sin_plus_x_p1")."""
    out = []
    for path in glob.glob(os.path.join(folder, prefix + "*.csv")):
        rest = os.path.basename(path)[len(prefix):-4]
        if rest.isdigit():
            out.append(path)
    return out


def p_of(tag):
    return int(tag.rsplit("p", 1)[1])


# ---- Report 4.1 ---------------------------------------------------------------

def sinusoid(folder, written):
    names = {"sin": "y = sin(x)", "sin_plus_x": "y = sin(x) + x"}
    fns = [fn for fn in names if os.path.exists(os.path.join(folder, "data_%s.csv" % fn))]
    fig, axes = plt.subplots(1, len(fns), figsize=(6.0 * len(fns), 4.2), squeeze=False)
    for ax, fn in zip(axes[0], fns):
        data = read_csv(os.path.join(folder, "data_%s.csv" % fn))
        ax.scatter(data["x"], data["y"], s=10, color="#009af9", label="data", zorder=3)
        preds = sorted(matching(folder, "pred_%s_p" % fn), key=lambda p: p_of(os.path.splitext(p)[0]))
        for i, path in enumerate(preds):
            p = p_of(os.path.splitext(path)[0])
            pr = read_csv(path)
            label = "NODE" if p == 0 else "ANODE p=%d" % p
            ax.plot(pr["x"], pr["y"], color="#e26f46" if p == 0 else PALETTE[(i + 1) % len(PALETTE)],
                    lw=1.8 if p == 0 else 1.4, label=label)
        ax.set_title("Predicted coordinates, " + names[fn])
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(fontsize=8)
    save(fig, folder, "fig5_sinusoid_predictions.png", written)

    for fn in fns:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        losses = sorted(matching(folder, "loss_%s_p" % fn), key=lambda p: p_of(os.path.splitext(p)[0]))
        for i, path in enumerate(losses):
            p = p_of(os.path.splitext(path)[0])
            l = read_csv(path)
            ax.plot(l["iteration"], l["loss"], color=PALETTE[i % len(PALETTE)], lw=1.2,
                    label="NODE" if p == 0 else "ANODE p=%d" % p)
        adam = [it for it, ph in zip(l["iteration"], l["phase"]) if ph == 0]
        if adam:
            ax.axvline(max(adam), color="gray", ls="--", lw=0.8)
            ax.text(max(adam), ax.get_ylim()[1], " L-BFGS", va="top", fontsize=8, color="gray")
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss (sum of squares)")
        ax.set_title("Training loss, " + names[fn])
        ax.legend(fontsize=8)
        save(fig, folder, "fig6_sinusoid_loss_%s.png" % fn, written)

    ablation = os.path.join(folder, "ablation_p10.csv")
    summary = os.path.join(folder, "summary.json")
    if os.path.exists(ablation) and os.path.exists(summary):
        with open(summary) as f:
            variants = json.load(f)["ablation"]["variants"]
        labels = [v["variant"] for v in variants]
        runs = [max(v["runs"], 1) for v in variants]
        stalled = [v["stalled"] / n for v, n in zip(variants, runs)]
        diverged = [v["diverged"] / n for v, n in zip(variants, runs)]
        fig, ax = plt.subplots(figsize=(7.0, 0.34 * len(labels) + 1.2))
        ys = list(range(len(labels)))[::-1]
        ax.barh(ys, stalled, color="#e26f46", label="stalled (final loss > 5x noise floor)")
        ax.barh(ys, diverged, left=stalled, color="#6b6b6b", label="diverged (solver gave up)")
        ax.set_yticks(ys)
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("fraction of %d initializations" % runs[0])
        ax.set_title("ANODE p = 10 on y = sin(x) + x: one change at a time")
        ax.legend(fontsize=8, loc="lower right")
        save(fig, folder, "fig_sinusoid_p10_ablation.png", written)


# ---- Report 4.2 ---------------------------------------------------------------

CLASS_COLORS = {1: "#e26f46", 0: "#009af9"}


def sphere_tags(folder, prefix):
    paths = glob.glob(os.path.join(folder, prefix + "_p*.csv"))
    return sorted((p_of(os.path.splitext(p)[0]) for p in paths))


def model_name(p):
    return "NODE" if p == 0 else "ANODE p=%d" % p


def nested_spheres(folder, written):
    data = read_csv(os.path.join(folder, "data.csv"))
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    for lab, name in ((1, "inner ball (+1)"), (0, "annulus (-1)")):
        xs = [x for x, l in zip(data["x1"], data["label"]) if l == lab]
        ys = [y for y, l in zip(data["x2"], data["label"]) if l == lab]
        ax.scatter(xs, ys, s=3, color=CLASS_COLORS[lab], label=name)
    ax.set_aspect("equal")
    ax.set_title("Concentric circles")
    ax.legend(fontsize=8, loc="upper right")
    save(fig, folder, "fig7_spheres_data.png", written)

    tags = sphere_tags(folder, "contour")
    if tags:
        fig, axes = plt.subplots(1, len(tags), figsize=(3.6 * len(tags), 3.4), squeeze=False)
        for ax, p in zip(axes[0], tags):
            c = read_csv(os.path.join(folder, "contour_p%d.csv" % p))
            n = int(round(math.sqrt(len(c["x1"]))))
            X = [c["x1"][i * n:(i + 1) * n] for i in range(n)]
            Y = [c["x2"][i * n:(i + 1) * n] for i in range(n)]
            Z = [c["prediction"][i * n:(i + 1) * n] for i in range(n)]
            cs = ax.contourf(X, Y, Z, levels=20, cmap="viridis", vmin=-1.5, vmax=1.5)
            ax.set_aspect("equal")
            ax.set_title(model_name(p))
        fig.colorbar(cs, ax=axes[0].tolist(), shrink=0.85)
        save(fig, folder, "fig8_spheres_contours.png", written)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, p in enumerate(sphere_tags(folder, "loss")):
        l = read_csv(os.path.join(folder, "loss_p%d.csv" % p))
        ax.plot(l["iteration"], l["loss"], color=PALETTE[i % len(PALETTE)], lw=1.0, label=model_name(p))
    ax.set_xlabel("iteration")
    ax.set_ylabel("MSE loss")
    ax.set_yscale("log")
    ax.set_title("Training loss, concentric circles")
    ax.legend(fontsize=8)
    save(fig, folder, "fig9_spheres_loss.png", written)

    tags = sphere_tags(folder, "features")
    if tags:
        node = [p for p in tags if p == 0]
        aug = [p for p in tags if p >= 3]
        panels = node[:1] + aug[-1:]
        fig = plt.figure(figsize=(5.0 * len(panels), 4.4))
        for k, p in enumerate(panels):
            f = read_csv(os.path.join(folder, "features_p%d.csv" % p))
            colors = [CLASS_COLORS[int(l)] for l in f["label"]]
            if p == 0:
                ax = fig.add_subplot(1, len(panels), k + 1)
                ax.scatter(f["h1"], f["h2"], s=4, c=colors)
                ax.set_xlabel("h1(T)")
                ax.set_ylabel("h2(T)")
            else:
                ax = fig.add_subplot(1, len(panels), k + 1, projection="3d")
                d = [key for key in f if key.startswith("h")]
                keys = d[2:5] if len(d) >= 5 else d[:3]
                ax.scatter(f[keys[0]], f[keys[1]], f[keys[2]], s=4, c=colors)
                ax.set_xlabel(keys[0] + "(T)")
                ax.set_ylabel(keys[1] + "(T)")
                ax.set_zlabel(keys[2] + "(T)")
            ax.set_title("Learned features, " + model_name(p))
        save(fig, folder, "fig10_spheres_features.png", written)


# ---- Report 4.3 ---------------------------------------------------------------

def mnist_curves(folder):
    """{variant: {"label": ..., "steps": [...], column: [[per seed]...]}} from curve_*.csv."""
    summary = json.load(open(os.path.join(folder, "summary.json")))
    labels = {r["name"]: r["label"] for r in summary["results"]}
    out = {}
    for r in summary["results"]:
        c = read_csv(os.path.join(folder, "curve_%s.csv" % r["name"]))
        seeds = sorted(set(c["seed"]))
        per = {}
        for col in ("test_accuracy", "test_loss", "train_accuracy", "train_loss", "nfe_forward", "nfe_backward"):
            per[col] = [[v for v, s in zip(c[col], c["seed"]) if s == seed] for seed in seeds]
        per["steps"] = [st for st, s in zip(c["step"], c["seed"]) if s == seeds[0]]
        per["label"] = labels[r["name"]]
        out[r["name"]] = per
    return out, summary


def band(ax, steps, runs, color, label):
    n = min(len(r) for r in runs)
    cols = list(zip(*[r[:n] for r in runs]))
    mean = [sum(c) / len(c) for c in cols]
    ax.plot(steps[:n], mean, color=color, lw=1.6, label=label + ("" if len(runs) == 1 else " (%d seeds)" % len(runs)))
    if len(runs) > 1:
        ax.fill_between(steps[:n], [min(c) for c in cols], [max(c) for c in cols], color=color, alpha=0.18, lw=0)


def mnist_figure(folder, curves, names, which, title, filename, written):
    names = [n for n in names if n in curves]
    if not names:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0))
    acc, loss = ("%s_accuracy" % which, "%s_loss" % which)
    for i, name in enumerate(names):
        c = curves[name]
        if any(v != v or v < 0 for r in c[acc] for v in r):
            continue  # not recorded at every step
        band(axes[0], c["steps"], c[acc], PALETTE[i % len(PALETTE)], c["label"])
        band(axes[1], c["steps"], c[loss], PALETTE[i % len(PALETTE)], c["label"])
    axes[0].set_ylabel("%s accuracy" % which)
    axes[1].set_ylabel("%s loss (mean cross-entropy)" % which)
    for ax in axes:
        ax.set_xlabel("training iteration")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    save(fig, folder, filename, written)


def mnist(folder, written):
    curves, summary = mnist_curves(folder)
    mnist_figure(folder, curves, ["node", "anode_p10", "anode_p25", "anode_p40"], "test",
                 "Zero-padding ANODE: test accuracy and loss", "fig12_mnist_anode.png", written)
    mnist_figure(folder, curves, ["node", "anode_p10", "ilanode_p10", "ilanode_p25", "ilanode_p40"], "test",
                 "Input-layer ANODE: test accuracy and loss", "fig13_mnist_ilanode.png", written)
    tr = ["anode_p10", "tranode_b02", "tranode_b03", "tranode_b06"]
    mnist_figure(folder, curves, tr, "train", "Time-regularized ANODE (p=10): train accuracy and loss",
                 "fig14_mnist_tranode_train.png", written)
    mnist_figure(folder, curves, tr, "test", "Time-regularized ANODE (p=10): test accuracy and loss",
                 "fig15_mnist_tranode_test.png", written)
    mnist_figure(folder, curves, ["anode_p10", "tranode_b02_evalnoise", "tranode_b03_evalnoise", "tranode_b06_evalnoise"],
                 "test", "Time-regularized ANODE with T also drawn at test time (the report's code)",
                 "fig15b_mnist_tranode_test_evalnoise.png", written)
    mnist_figure(folder, curves, ["sonode_report", "sonode", "sonode_zero_velocity", "sonode_report_frozen_input",
                                  "anode_p10"], "test",
                 "Second-order NODE: test accuracy and loss", "fig16_mnist_sonode.png", written)
    study = [n for n in curves if n.endswith("_studypath")]
    if study:
        pairs = []
        for n in study:
            pairs += [n[:-len("_studypath")], n]
        mnist_figure(folder, curves, pairs, "test",
                     "Table 1 models: our default path vs the study's gradient path (interpolating adjoint)",
                     "fig_mnist_study_gradient_path.png", written)
    conv = [n for n in ("conv_node", "conv_anode") if n in curves]
    if conv:
        fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0))
        for i, name in enumerate(conv):
            c = curves[name]
            pts = [(s, a) for s, a in zip(c["steps"], c["test_accuracy"][0]) if a == a]
            axes[0].plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=PALETTE[i], label=c["label"])
            axes[1].plot(c["steps"], [sum(v) / len(v) for v in zip(*c["nfe_forward"])], color=PALETTE[i],
                         label=c["label"] + " forward")
            axes[1].plot(c["steps"], [sum(v) / len(v) for v in zip(*c["nfe_backward"])], "--", color=PALETTE[i],
                         label=c["label"] + " backward")
        axes[0].set_ylabel("test accuracy (end of each epoch)")
        axes[1].set_ylabel("NFE per step")
        for ax in axes:
            ax.set_xlabel("training iteration")
            ax.legend(fontsize=7)
        fig.suptitle("Convolutional NODE vs ANODE (Dupont et al.)")
        save(fig, folder, "mnist_conv.png", written)
    # NFE per training step, forward and backward.
    names = [r["name"] for r in summary["results"]]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names)), 4.0))
    fwd = [r["nfe_forward_per_step"] for r in summary["results"]]
    bwd = [r["nfe_backward_per_step"] for r in summary["results"]]
    xs = list(range(len(names)))
    ax.bar([x - 0.2 for x in xs], fwd, width=0.4, color="#009af9", label="forward")
    ax.bar([x + 0.2 for x in xs], bwd, width=0.4, color="#e26f46", label="backward")
    ax.set_xticks(xs)
    ax.set_xticklabels([r["label"] for r in summary["results"]], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("function evaluations per step")
    ax.set_title("NFE per training step (mean over steps and seeds)")
    ax.legend(fontsize=8)
    save(fig, folder, "mnist_nfe.png", written)


# ---- Gradient methods -----------------------------------------------------------

# Every value of ode::Gradient. The exact methods (checkpoint, binomial,
# symplectic) lie on backprop in the error panels: dashed and dotted so that
# backprop shows through.
METHOD_COLORS = {"backprop": "#009af9", "adjoint": "#e26f46", "checkpoint": "#3da44d",
                 "interpolating": "#c271d2", "interpolating_checkpoint": "#ac8d18", "quadrature": "#00a9ad",
                 "binomial": "#ed5d92", "symplectic": "#6b6b6b"}
METHOD_STYLE = {"backprop": "-", "adjoint": "-", "checkpoint": "--", "interpolating": "-",
                "interpolating_checkpoint": "--", "quadrature": "-.", "binomial": ":", "symplectic": "-."}


def by_method(c, xkey, ykey):
    out = {}
    for m, x, y in zip(c["method"], c[xkey], c[ykey]):
        out.setdefault(m, ([], []))
        out[m][0].append(x)
        out[m][1].append(max(y, 1e-17) if "error" in ykey else y)
    return out


def gradient_methods(folder, written):
    summary = json.load(open(os.path.join(folder, "summary.json")))
    for r in summary["results"]:
        name = r["model"]
        tol = read_csv(os.path.join(folder, "tolerance_%s.csv" % name))
        steps = read_csv(os.path.join(folder, "steps_%s.csv" % name))
        fig, axes = plt.subplots(2, 3, figsize=(14.0, 7.6))
        panels = [
            (axes[0][0], tol, "tolerance", "rel_error", "dopri5 rtol = atol", "relative gradient error", True),
            (axes[0][1], tol, "tolerance", "seconds", "dopri5 rtol = atol", "seconds per gradient", True),
            (axes[0][2], tol, "tolerance", "nfe_backward", "dopri5 rtol = atol", "backward NFE", True),
            (axes[1][0], steps, "steps", "rel_error", "RK4 steps", "relative gradient error", False),
            (axes[1][1], steps, "steps", "peak_bytes", "RK4 steps", "peak tape memory (bytes)", False),
            (axes[1][2], steps, "steps", "seconds", "RK4 steps", "seconds per gradient", False),
        ]
        for ax, c, xk, yk, xl, yl, invert in panels:
            for m, (xs, ys) in by_method(c, xk, yk).items():
                ax.plot(xs, ys, METHOD_STYLE.get(m, "-"), marker="o", ms=3, color=METHOD_COLORS.get(m, "k"), label=m)
            ax.set_xscale("log")
            ax.set_yscale("log")
            if invert:
                ax.invert_xaxis()
            ax.set_xlabel(xl)
            ax.set_ylabel(yl)
            ax.legend(fontsize=8)
        fig.suptitle("Gradient methods on %s (reference: dopri5 at %g)" % (name, r["reference"]["tolerance"]))
        fig.tight_layout()
        save(fig, folder, "gradient_methods_%s.png" % name, written)
    if "dissipative" in summary:
        dissipative(folder, summary["dissipative"], written)


def dissipative(folder, info, written):
    """The backsolve adjoint's failure on a dissipative flow, against the interval length."""
    c = read_csv(os.path.join(folder, "dissipative.csv"))
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.2))
    for ax, yk, yl in ((axes[0], "rel_error", "relative gradient error"), (axes[1], "nfe_backward", "backward NFE")):
        for m, (xs, ys) in by_method(c, "t_end", yk).items():
            ax.plot(xs, ys, METHOD_STYLE.get(m, "-"), marker="o", ms=3, color=METHOD_COLORS.get(m, "k"), label=m)
        ax.set_yscale("log")
        ax.set_xlabel("end time T")
        ax.set_ylabel(yl)
        ax.legend(fontsize=8)
    rates = ", ".join("%g" % r for r in info["rates"])
    fig.suptitle("dh/dt = h W^T, decay rates %s; %s at rtol = atol = %g" % (rates, info["solver"], info["tolerance"]))
    fig.tight_layout()
    save(fig, folder, "gradient_methods_dissipative.png", written)


def ffjord(folder, written):
    summary = json.load(open(os.path.join(folder, "summary.json")))
    results = summary["results"]
    fig, axes = plt.subplots(len(results), 3, figsize=(10.5, 3.5 * len(results)), squeeze=False)
    lim = [-4.5, 4.5]
    for row, r in zip(axes, results):
        for ax in row:
            ax.grid(False)
        name = r["density"]
        data = read_csv(os.path.join(folder, "data_%s.csv" % name))
        dens = read_csv(os.path.join(folder, "density_%s.csv" % name))
        samp = read_csv(os.path.join(folder, "samples_%s.csv" % name))
        row[0].hist2d(data["x1"], data["x2"], bins=80, range=[lim, lim], cmap="viridis")
        row[0].set_title("%s: data" % name)
        g = int(round(math.sqrt(len(dens["x1"]))))
        p = [[math.exp(dens["log_density"][i * g + j]) for j in range(g)] for i in range(g)]
        row[1].imshow(p, origin="lower", extent=lim + lim, cmap="viridis", aspect="equal")
        row[1].set_title("learned density (test NLL %.2f)" % r["test_nll_exact"])
        row[2].hist2d(samp["x1"], samp["x2"], bins=80, range=[lim, lim], cmap="viridis")
        row[2].set_title("samples from the flow")
        for ax in row:
            ax.set_xlim(lim)
            ax.set_ylim(lim)
            ax.set_aspect("equal")
    fig.tight_layout()
    save(fig, folder, "ffjord_densities.png", written)

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for k, r in enumerate(results):
        c = read_csv(os.path.join(folder, "loss_%s.csv" % r["density"]))
        ax.plot(c["iteration"], c["loss"], color=PALETTE[k % len(PALETTE)], lw=1, label=r["density"])
    ax.set_xlabel("iteration")
    ax.set_ylabel("training NLL (Hutchinson)")
    ax.legend()
    fig.tight_layout()
    save(fig, folder, "ffjord_loss.png", written)


PLOTTERS = {"sinusoid": sinusoid, "nested_spheres": nested_spheres, "mnist": mnist,
            "gradient_methods": gradient_methods, "ffjord": ffjord}


def main(argv):
    quiet = "--quiet" in argv
    args = [a for a in argv[1:] if a != "--quiet"]
    if len(args) != 2 or args[0] not in PLOTTERS:
        sys.stderr.write("usage: plot {%s} <results folder> [--quiet]\n" % ",".join(sorted(PLOTTERS)))
        return 2
    experiment, folder = args
    if not os.path.isdir(folder):
        sys.stderr.write("plot: no such folder: %s\n" % folder)
        return 2
    written = []
    PLOTTERS[experiment](folder, written)
    if not quiet:
        print("figures: " + ", ".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
