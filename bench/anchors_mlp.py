"""The MLP SGD step of anchors.md in PyTorch (eager, torch.compile) and JAX (jit).

784-256-10, ReLU, batch 128, softmax cross-entropy, plain SGD (lr 0.01, no
momentum, as bench/mlp_sgd.dfl), float32, random data. One step = forward +
backward + update. Prints "mlp_ms <median ms>" over STEPS timed steps after
WARM warm-up steps (compilation happens in the warm-up and is not timed).
Thread counts must be set by the caller *before* this process starts
(OMP_NUM_THREADS, OPENBLAS_NUM_THREADS=1, XLA_FLAGS: scripts/bench.sh); the
script also calls torch.set_num_threads and prints what it ran with.

usage: python anchors_mlp.py {torch_eager,torch_compile,jax_jit} THREADS [STEPS]
"""
import statistics
import sys
import time

B, I, H, O = 128, 784, 256, 10
LR = 0.01


def bench_torch(threads, steps, compiled):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(B, I)
    y = torch.randint(0, O, (B,))
    model = torch.nn.Sequential(torch.nn.Linear(I, H), torch.nn.ReLU(), torch.nn.Linear(H, O))
    opt = torch.optim.SGD(model.parameters(), lr=LR)

    def loss_fn(xb, yb):
        return F.cross_entropy(model(xb), yb)

    if compiled:
        # forward + backward through Inductor (AOTAutograd), and the
        # optimizer update compiled too: the whole step is generated code
        loss_fn = torch.compile(loss_fn)
        opt_step = torch.compile(opt.step)
    else:
        opt_step = opt.step

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x, y)
        loss.backward()
        opt_step()
        return loss

    warm = 30 if compiled else 20
    for _ in range(warm):
        step()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()} "
          f"interop={torch.get_num_interop_threads()} loss={float(step().detach()):.4f}")
    return ts


def bench_jax(threads, steps):
    import jax
    import jax.numpy as jnp

    kx, ky, k1, k2 = jax.random.split(jax.random.PRNGKey(0), 4)
    x = jax.random.normal(kx, (B, I), jnp.float32)
    y = jax.random.randint(ky, (B,), 0, O)
    lim1, lim2 = (6 / (I + H)) ** 0.5, (6 / (H + O)) ** 0.5
    params = {
        "W1": jax.random.uniform(k1, (I, H), jnp.float32, -lim1, lim1),
        "b1": jnp.zeros((H,), jnp.float32),
        "W2": jax.random.uniform(k2, (H, O), jnp.float32, -lim2, lim2),
        "b2": jnp.zeros((O,), jnp.float32),
    }

    def loss_fn(p, xb, yb):
        h = jax.nn.relu(xb @ p["W1"] + p["b1"])
        logits = h @ p["W2"] + p["b2"]
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    @jax.jit
    def step(p, xb, yb):
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        return jax.tree_util.tree_map(lambda a, b: a - LR * b, p, g), loss

    step = jax.jit(step, donate_argnums=0)
    for _ in range(20):
        params, loss = step(params, x, y)
    loss.block_until_ready()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        params, loss = step(params, x, y)
        loss.block_until_ready()
        ts.append(time.perf_counter() - t0)
    print(f"# jax {jax.__version__} devices={jax.devices()} loss={float(loss):.4f}")
    return ts


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    impl, threads = sys.argv[1], int(sys.argv[2])
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    if impl == "torch_eager":
        ts = bench_torch(threads, steps, compiled=False)
    elif impl == "torch_compile":
        ts = bench_torch(threads, steps, compiled=True)
    elif impl == "jax_jit":
        ts = bench_jax(threads, steps)
    else:
        sys.exit(f"unknown implementation {impl!r}\n{__doc__}")
    print(f"mlp_ms {statistics.median(ts) * 1e3:.4f}")


if __name__ == "__main__":
    main()
