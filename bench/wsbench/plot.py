"""The idle-connection scaling plot (bench/idle-scaling.png): RSS and CPU against the number of upstreams,
with the least-squares line through the measured points and where it projects at 100,000."""

import os

PLOT_NAME = "idle-scaling.png"
PROJECT_TO = 100_000


def fit(xs, ys):
    """Least-squares slope and intercept."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return slope, my - slope * mx


def idle_projection(results):
    """Slope (KiB per connection), intercept and projected RSS at 100,000 from the connected idle runs."""
    rows = sorted((r for r in results if r["kind"] == "idle" and r.get("ok")), key=lambda r: r["connections"])
    if len(rows) < 2:
        return None
    slope, intercept = fit([r["connections"] for r in rows], [r["rss_end_kib"] for r in rows])
    return {"kib_per_connection": slope, "baseline_mib": intercept / 1024,
            "projected_mib": (intercept + slope * PROJECT_TO) / 1024, "points": len(rows)}


def write_idle_plot(results, bench_dir):
    """Writes the PNG and returns its file name, or None (fewer than two runs, or no matplotlib)."""
    rows = sorted((r for r in results if r["kind"] == "idle" and r.get("ok")), key=lambda r: r["connections"])
    if len(rows) < 2:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    xs = [r["connections"] for r in rows]
    fig, (rss_axis, cpu_axis) = plt.subplots(1, 2, figsize=(10, 4))
    rss_axis.plot(xs, [r["rss_end_kib"] / 1024 for r in rows], "o-", label="measured VmRSS")
    projection = idle_projection(results)
    if projection:
        line_x = [0, max(xs)]
        rss_axis.plot(line_x, [projection["baseline_mib"] + projection["kib_per_connection"] * x / 1024 for x in line_x], "--",
                      label=f"fit: {projection['kib_per_connection']:.1f} KiB / connection")
    rss_axis.set_xlabel("idle upstream connections")
    rss_axis.set_ylabel("daemon RSS (MiB)")
    rss_axis.set_title("memory")
    rss_axis.legend()
    cpu_axis.plot(xs, [r["cpu_percent"] for r in rows], "o-", color="tab:red")
    cpu_axis.axhline(1.0, color="grey", linestyle=":", label="1 % target")
    cpu_axis.set_xlabel("idle upstream connections")
    cpu_axis.set_ylabel("daemon CPU % over the window (30 s pings)")
    cpu_axis.set_title("idle CPU")
    cpu_axis.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(bench_dir, PLOT_NAME), dpi=100)
    plt.close(fig)
    return PLOT_NAME
