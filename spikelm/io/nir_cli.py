"""``spikelm nir export`` and ``spikelm nir import``: the command-line side of :mod:`spikelm.io.nir`."""
from __future__ import annotations

from spikelm.errors import ConfigError
from spikelm.io.outputs import OVERWRITE_HELP, check_output


def add_parser(sub):
    """Add ``nir`` (with ``export`` and ``import``) to the ``spikelm`` subcommands."""
    p = sub.add_parser("nir", help="NIR graphs in and out (snnTorch, Norse, Sinabs, neuromorphic chips)",
                       description="Exchange networks as NIR graphs (docs/nir.md).")
    nsub = p.add_subparsers(dest="nir_command", required=True)
    e = nsub.add_parser("export", help="write a scenario's network as a NIR graph",
                        description="Write a scenario's network as a NIR graph (HDF5).")
    e.add_argument("scenario", help="scenario file (TOML)")
    e.add_argument("-o", "--out", required=True, help="NIR file to write, e.g. net.nir")
    e.add_argument("--seed", type=int, help="override the scenario's seed")
    e.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    e.add_argument("--time-unit", choices=["s", "ms"], default="s",
                   help="time unit of the file (default s, as snnTorch and Norse read it)")
    i = nsub.add_parser("import", help="turn a NIR graph into a scenario at a chosen dt",
                        description="Turn a NIR graph into a spikelm scenario (TOML) at step DT.")
    i.add_argument("file", help="NIR file (HDF5)")
    i.add_argument("--dt", type=float, required=True, help="step width, ms")
    i.add_argument("-o", "--out", required=True, help="scenario file to write, e.g. scenario.toml")
    i.add_argument("--discretisation", choices=["exact", "euler"], default="exact",
                   help="exact: integrate NIR's equations exactly (default); euler: the forward-Euler step of "
                        "snnTorch, Norse and most deep-learning SNN libraries")
    i.add_argument("--timing", choices=["step-per-edge", "same-step"], default="step-per-edge",
                   help="step-per-edge: every edge takes one step (default); same-step: spikes cross feed-forward "
                        "edges within their step, as those libraries run a network")
    i.add_argument("--time-unit", choices=["s", "ms"], default="s",
                   help="time unit of the file's time constants and delays (default s)")
    i.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)


def run(args):
    """Run a parsed ``spikelm nir ...`` command; returns the exit code."""
    from spikelm.io import nir as snir

    source = args.scenario if args.nir_command == "export" else args.file
    check_output(args.out, "-o", inputs={"scenario" if args.nir_command == "export" else "NIR file": source},
                 overwrite=args.overwrite)
    if args.nir_command == "export":
        from spikelm.io.scenario import load_scenario

        if args.seed is not None and not 0 <= args.seed < 2**63:
            raise ConfigError(f"--seed: must be an integer in [0, 2**63), got {args.seed}")
        sc = load_scenario(args.scenario)
        net = sc.build(args.seed)
        rec = sc.record_spikes()
        outputs = None if rec == "all" else [p for p in rec if not net.populations[p].model.is_source]
        # (sources are Input nodes: NIR outputs are what the network computes)
        try:
            graph = snir.export_network(net, args.out, outputs, args.time_unit, sc.data.get("run"))
        except ConfigError as e:
            raise ConfigError(f"{args.scenario}: {e}") from None
        print(f"wrote {args.out}: NIR graph of {len(graph.nodes)} nodes, {len(graph.edges)} edges "
              f"({len(net.populations)} populations, {len(net.projections)} projections, dt = {net.dt} ms)")
        return 0
    imp = snir.import_nir(args.file, args.dt, args.discretisation, args.timing, args.time_unit)
    imp.scenario()  # validate (every field, every model's parameters) before writing anything
    imp.write(args.out)
    pops = imp.data["populations"]
    print(f"wrote {args.out}: {len(pops)} populations, {len(imp.data.get('projections', {}))} projections, "
          f"dt = {args.dt} ms ({args.discretisation}, {args.timing})")
    for name, t in pops.items():
        lag = imp.offsets.get(name, 0)
        note = "  input: give it spikes (params.times)" if name in imp.inputs else ""
        note += f"  runs {lag} step{'s' if lag > 1 else ''} behind the source simulator" if lag else ""
        print(f"  {name:<24}{t['model']:<13}{t['n']:>8}{note}")
    return 0

