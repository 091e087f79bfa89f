"""PyTorch twins of the headline workloads in benchmarks/models_benchmark.cc.

Plain PyTorch, float32, one thread: the same shapes, step counts, losses and
optimizer as W1, W2 and W3, a hand-written RK4 loop, and a hand-written
adjoint (a torch.autograd.Function that integrates [h, a, a_theta] backward
with RK4, one torch.autograd.grad VJP per stage, like torchdiffeq's
odeint_adjoint, with the augmented state kept as one flat tensor as
torchdiffeq does). The checkpoint twin (W3 only) re-runs each RK4 step in the
backward pass with torch.utils.checkpoint (non-reentrant).

Import this module only after the environment is set up (compare.py clears
OPENBLAS_CORETYPE first: PyTorch uses the system OpenBLAS here, and a forced
core type would hold it to AVX2 kernels).
"""

import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

torch.set_num_threads(1)

# ---- Solvers ----------------------------------------------------------------------


def rk4_step(func, t, h, dt):
    k1 = func(t, h)
    k2 = func(t + dt / 2, torch.add(h, k1, alpha=dt / 2))
    k3 = func(t + dt / 2, torch.add(h, k2, alpha=dt / 2))
    k4 = func(t + dt, torch.add(h, k3, alpha=dt))
    y = h.add(k1, alpha=dt / 6)
    if torch.is_grad_enabled():  # out-of-place: autograd needs every intermediate
        return y.add(k2, alpha=dt / 3).add(k3, alpha=dt / 3).add(k4, alpha=dt / 6)
    return y.add_(k2, alpha=dt / 3).add_(k3, alpha=dt / 3).add_(k4, alpha=dt / 6)


def rk4(func, h, t0, t1, steps):
    """Fixed-step RK4 on [t0, t1] (either direction); backprop through every op."""
    dt = (t1 - t0) / steps
    for i in range(steps):
        h = rk4_step(func, t0 + i * dt, h, dt)
    return h


def rk4_checkpointed(func, h, t0, t1, steps):
    """RK4 whose backward re-runs each step from its stored start state."""
    dt = (t1 - t0) / steps
    for i in range(steps):
        h = torch.utils.checkpoint.checkpoint(
            lambda s, t=t0 + i * dt: rk4_step(func, t, s, dt), h, use_reentrant=False)
    return h


class _OdeintAdjoint(torch.autograd.Function):
    """h(t1) from h(t0) = h0; backward integrates the adjoint system
    dh/dt = f, da/dt = -a^T df/dh, da_theta/dt = -a^T df/dtheta from t1 to t0."""

    @staticmethod
    def forward(ctx, h0, func, t0, t1, steps, *params):
        with torch.no_grad():
            h1 = rk4(func, h0, t0, t1, steps)
        ctx.func, ctx.t0, ctx.t1, ctx.steps, ctx.params = func, t0, t1, steps, params
        ctx.save_for_backward(h1)
        return h1

    @staticmethod
    def backward(ctx, g):
        (h1,) = ctx.saved_tensors
        func, params = ctx.func, ctx.params
        shapes = [h1.shape, h1.shape] + [p.shape for p in params]
        sizes = [s.numel() for s in shapes]

        def augmented(t, y):
            h, a, *_ = [v.view(s) for v, s in zip(torch.split(y, sizes), shapes)]
            with torch.enable_grad():
                hh = h.detach().requires_grad_(True)
                f = func(t, hh)
                vjp = torch.autograd.grad(f, (hh,) + tuple(params), a, allow_unused=True)
            parts = [f.detach().reshape(-1), vjp[0].neg().reshape(-1)]
            for v, p in zip(vjp[1:], params):
                parts.append(torch.zeros(p.numel()) if v is None else v.neg().reshape(-1))
            return torch.cat(parts)

        y1 = torch.cat([h1.reshape(-1), g.reshape(-1)] + [torch.zeros(p.numel()) for p in params])
        with torch.no_grad():
            y0 = rk4(augmented, y1, ctx.t1, ctx.t0, ctx.steps)
        pieces = [v.view(s) for v, s in zip(torch.split(y0, sizes), shapes)]
        return (pieces[1], None, None, None, None, *pieces[2:])


def odeint_adjoint(func, h0, t0, t1, steps):
    return _OdeintAdjoint.apply(h0, func, t0, t1, steps, *func.parameters())


def solve(method, func, h0, steps):
    if method == "backprop":
        return rk4(func, h0, 0.0, 1.0, steps)
    if method == "adjoint":
        return odeint_adjoint(func, h0, 0.0, 1.0, steps)
    if method == "checkpoint":
        return rk4_checkpointed(func, h0, 0.0, 1.0, steps)
    raise ValueError(method)


# ---- Models -----------------------------------------------------------------------


class Mlp(nn.Module):
    def __init__(self, widths, act):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.act = act

    def forward(self, t, h):
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i + 1 < len(self.layers):
                h = self.act(h)
        return h


class W1Model(nn.Module):
    """784 -> 20 (identity), pad 10, ODE 30 -> 10 tanh -> 10 tanh -> 30, first 20, 20 -> 10."""

    def __init__(self, method, steps=10):
        super().__init__()
        self.inp = nn.Linear(784, 20)
        self.f = Mlp([30, 10, 10, 30], torch.tanh)
        self.head = nn.Linear(20, 10)
        self.method, self.steps = method, steps

    def forward(self, x):
        h0 = F.pad(self.inp(x), (0, 10))
        h1 = solve(self.method, self.f, h0, self.steps)
        return self.head(h1[:, :20])


class W2Model(nn.Module):
    """2 -> pad 10 (state 12), ODE 12 -> 64 relu -> 64 relu -> 12, 12 -> 1."""

    def __init__(self, method, steps=10):
        super().__init__()
        self.f = Mlp([12, 64, 64, 12], torch.relu)
        self.head = nn.Linear(12, 1)
        self.method, self.steps = method, steps

    def forward(self, x):
        h0 = F.pad(x, (0, 10))
        return self.head(solve(self.method, self.f, h0, self.steps))


def w1_data():
    g = torch.Generator().manual_seed(11)
    return torch.rand(100, 784, generator=g), torch.randint(0, 10, (100,), generator=g)


def w2_data():
    g = torch.Generator().manual_seed(12)
    n = 128
    inner = torch.arange(n) % 2 == 0
    r = torch.where(inner, 0.5 * torch.rand(n, generator=g), 1.0 + 0.5 * torch.rand(n, generator=g))
    a = 2 * torch.pi * torch.rand(n, generator=g)
    x = torch.stack([r * torch.cos(a), r * torch.sin(a)], dim=1)
    y = torch.where(inner, 1.0, -1.0).reshape(n, 1)
    return x, y


# ---- Workloads as closures -------------------------------------------------------


def w1_step(method):
    torch.manual_seed(1)
    model = W1Model(method)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x, labels = w1_data()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()

    return step


def w2_step(method):
    torch.manual_seed(2)
    model = W2Model(method)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x, y = w2_data()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()

    return step


def w3_gradient(method, steps):
    torch.manual_seed(2)
    model = W2Model(method, steps)
    x, y = w2_data()

    def gradient():
        model.zero_grad(set_to_none=True)
        F.mse_loss(model(x), y).backward()

    return gradient


# ---- Timing and memory -----------------------------------------------------------


def time_it(fn, repetitions=5, min_time=0.2, warmup=3):
    """Median over repetitions of the per-call time, each repetition running
    fn enough times to last about min_time. Process CPU time (as the C++
    side's MeasureProcessCPUTime) and wall time, in seconds per call."""
    for _ in range(warmup):
        fn()
    t0 = time.process_time()
    fn()
    once = max(time.process_time() - t0, 1e-6)
    calls = max(1, int(min_time / once))
    cpu, wall = [], []
    for _ in range(repetitions):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(calls):
            fn()
        cpu.append((time.process_time() - c0) / calls)
        wall.append((time.perf_counter() - w0) / calls)
    return {"cpu_s": statistics.median(cpu), "wall_s": statistics.median(wall),
            "cpu_s_all": cpu, "calls_per_repetition": calls}


def peak_bytes(fn):
    """Peak bytes held by PyTorch's CPU allocator during one call of fn, above
    what was held when it started: every tensor buffer the call allocates
    (activations, saved tensors, gradients, temporaries, the adjoint's
    state). From torch.profiler(profile_memory=True): the raw allocation and
    free records ("[memory]" events with their byte counts, in time order),
    as a running sum; the peak is its maximum. None if the profiler gives no
    memory records."""
    fn()  # warm-up outside the profile
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        fn()
    records = [(e.start_us(), e.nbytes()) for e in prof.profiler.kineto_results.events()
               if e.name() == "[memory]"]
    if not records:
        return None
    records.sort(key=lambda r: r[0])  # stable: simultaneous records keep their order
    held = peak = 0
    for _, delta in records:
        held += delta
        peak = max(peak, held)
    return peak


# W2's GEMM FLOPs per gradient, counted as in models_benchmark.cc (w2_flops).
def w2_flops(method, steps):
    b = 128
    f = 2 * b * (12 * 64 + 64 * 64 + 64 * 12)
    head = 3 * 2 * b * 12
    evals = 4 * steps
    if method == "backprop":
        return 3 * evals * f - 2 * b * 12 * 64 + head
    return evals * f + 3 * evals * f + head


WORKLOADS = [
    # (key, workload label, method, N, closure factory)
    ("W1/backprop", "W1 mnist-anode-step", "backprop", 10, lambda: w1_step("backprop")),
    ("W1/adjoint", "W1 mnist-anode-step", "adjoint", 10, lambda: w1_step("adjoint")),
    ("W2/backprop", "W2 spheres-anode-step", "backprop", 10, lambda: w2_step("backprop")),
    ("W2/adjoint", "W2 spheres-anode-step", "adjoint", 10, lambda: w2_step("adjoint")),
] + [
    (f"W3/{m}/{n}", "W3 grad-scaling", m, n, (lambda m=m, n=n: w3_gradient(m, n)))
    for m in ("backprop", "adjoint", "checkpoint") for n in (10, 100, 1000)
]
